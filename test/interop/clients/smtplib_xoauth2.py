#!/usr/bin/env python3
"""Send one message with Python's smtplib and SASL XOAUTH2 over STARTTLS.

The devicemail interop tests use it as a mail client we did not write, pointed
at the oauthmailtest emulator. The access token is read from stdin (never from
argv). Prints the final SMTP reply as "REPLY <code> <text>"; exits 0 when the
message was accepted, 1 when the server refused it, 2 on a usage error.
"""
import argparse
import smtplib
import ssl
import sys
from email.message import EmailMessage

ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--cafile", required=True)
ap.add_argument("--user", required=True)
ap.add_argument("--sender", required=True)
ap.add_argument("--rcpt", default="rcpt@example.test")
ap.add_argument("--subject", default="smtplib xoauth2")
args = ap.parse_args()
if args.host not in ("127.0.0.1", "localhost", "::1"):
    sys.exit(2)
token = sys.stdin.readline().strip()


def xoauth2(challenge=None):
    # smtplib calls this for the initial response (challenge None) and again
    # for each 334 challenge; XOAUTH2 answers an error challenge with nothing.
    if challenge:
        return ""
    return "user=%s\x01auth=Bearer %s\x01\x01" % (args.user, token)


ctx = ssl.create_default_context(cafile=args.cafile)
try:
    with smtplib.SMTP(args.host, args.port, timeout=20) as s:
        s.starttls(context=ctx)
        s.ehlo("python.interop.test")
        code, text = s.auth("XOAUTH2", xoauth2, initial_response_ok=True)
        msg = EmailMessage()
        msg["From"] = args.sender
        msg["To"] = args.rcpt
        msg["Subject"] = args.subject
        msg.set_content("sent by Python smtplib\n")
        s.send_message(msg)
        code, text = s.noop()
        print("REPLY %d %s" % (code, text.decode(errors="replace")))
except smtplib.SMTPResponseException as e:
    print("REPLY %d %s" % (e.smtp_code, e.smtp_error.decode(errors="replace")))
    sys.exit(1)
except smtplib.SMTPRecipientsRefused as e:
    for code, text in e.recipients.values():
        print("REPLY %d %s" % (code, text.decode(errors="replace")))
    sys.exit(1)
