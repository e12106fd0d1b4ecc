#!/usr/bin/env python3
"""Send one message through the emulator's Exchange side with Python's smtplib:
STARTTLS (verifying the emulator's CA), AUTH XOAUTH2, MAIL/RCPT/DATA.

usage: exchange_smtplib.py --port P --cafile CA --user U --token-file F
                           --from A --to B [--no-ir]

Prints one JSON object: {"auth": [code, text], "data": [code, text]} or, when
smtplib raises, {"error": class name, "code": code, "text": text}. The token is
read from a file so that it never appears in a process list.
"""
import argparse
import json
import smtplib
import ssl
import sys

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--cafile", required=True)
p.add_argument("--user", required=True)
p.add_argument("--token-file", required=True)
p.add_argument("--from", dest="sender", required=True)
p.add_argument("--to", required=True)
p.add_argument("--no-ir", action="store_true", help="two-step AUTH: wait for the 334")
a = p.parse_args()

with open(a.token_file) as f:
    token = f.read().strip()


def xoauth2(challenge=None):
    return "user=%s\x01auth=Bearer %s\x01\x01" % (a.user, token)


out = {}
try:
    with smtplib.SMTP("127.0.0.1", a.port, local_hostname="printer.example", timeout=30) as s:
        s.ehlo()
        s.starttls(context=ssl.create_default_context(cafile=a.cafile))
        s.ehlo()
        out["auth"] = list(s.auth("XOAUTH2", xoauth2, initial_response_ok=not a.no_ir))
        out["auth"][1] = out["auth"][1].decode()
        s.mail(a.sender)
        s.rcpt(a.to)
        msg = "From: %s\r\nTo: %s\r\nSubject: smtplib\r\n\r\nhello from smtplib\r\n" % (a.sender, a.to)
        code, text = s.data(msg.encode())
        out["data"] = [code, text.decode()]
except smtplib.SMTPResponseException as e:
    out.update({"error": type(e).__name__, "code": e.smtp_code, "text": e.smtp_error.decode()})
json.dump(out, sys.stdout)
print()
