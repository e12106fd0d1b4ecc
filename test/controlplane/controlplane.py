"""Drives "oauthmail emulator" end to end through its admin API, with the
Python standard library only: urllib for Entra ID and the admin API, smtplib
for Exchange Online SMTP.

Usage: python3 controlplane.py '<the JSON line the emulator printed>'
The emulator must run with --auto-approve alice@contoso.com. Exits 0 and
prints "controlplane: ok" when every step behaved as Microsoft's service does.
"""
import base64
import json
import smtplib
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

INFO = json.loads(sys.argv[1])
CTX = ssl.create_default_context(cafile=INFO["ca_file"])
TENANT = INFO["tenant"]
DEVICE_APP = "5f0c7a42-3e1b-4c9d-8a6f-2b7e1d9c0a31"
DAEMON_APP = "e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7"
DAEMON_SECRET = "emulator-daemon-secret-value"
ALICE = "alice@contoso.com"
SCOPE = "https://outlook.office.com/SMTP.Send offline_access"


def check(cond, what):
    if not cond:
        raise SystemExit("controlplane: FAILED: " + what)


def admin(path, body=None, token=INFO["admin_token"]):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(INFO["admin_url"] + path, data=data,
                                 method="GET" if body is None else "POST")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def entra(path, form):
    """POSTs a form to the Entra side; returns (status, JSON body, headers)."""
    req = urllib.request.Request(INFO["authority"] + "/" + TENANT + path,
                                 data=urllib.parse.urlencode(form).encode())
    try:
        with urllib.request.urlopen(req, context=CTX, timeout=30) as r:
            return r.status, json.load(r), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.load(e), e.headers


def sign_in():
    st, dc, _ = entra("/oauth2/v2.0/devicecode", {"client_id": DEVICE_APP, "scope": SCOPE})
    check(st == 200, "devicecode: %d %s" % (st, dc))
    return entra("/oauth2/v2.0/token", {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                        "client_id": DEVICE_APP, "device_code": dc["device_code"]})


def refresh(rt):
    return entra("/oauth2/v2.0/token", {"grant_type": "refresh_token", "client_id": DEVICE_APP,
                                        "refresh_token": rt, "scope": SCOPE})


def smtp_auth(access_token):
    """Signs in to the SMTP side with XOAUTH2; returns (code, reply)."""
    host, port = INFO["smtp"].rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as s:
        s.starttls(context=ssl.create_default_context(cafile=INFO["ca_file"]))
        s.ehlo("printer.example")
        blob = "user=%s\x01auth=Bearer %s\x01\x01" % (ALICE, access_token)
        code, reply = s.docmd("AUTH", "XOAUTH2 " + base64.b64encode(blob.encode()).decode())
        if code == 235:
            s.sendmail(ALICE, ["bob@contoso.com"], "From: %s\r\nTo: bob@contoso.com\r\nSubject: scan\r\n\r\npage\r\n" % ALICE)
        return code, reply.decode()


def codes(body):
    return body.get("error"), body.get("error_codes", [None])[0]


# The admin API wants its token.
st, body = admin("/clock", token="")
check(st == 401, "admin API without a token answered %d" % st)
st, body = admin("/clock/advance", {"duration": "-1h"})
check(st == 400 and "duration" in body["error"], "negative advance: %d %s" % (st, body))

# A sign-in, and mail through SMTP.
st, tok, _ = sign_in()
check(st == 200 and "refresh_token" in tok, "sign-in: %d %s" % (st, tok))
code, reply = smtp_auth(tok["access_token"])
check(code == 235, "SMTP AUTH: %d %s" % (code, reply))

# SMTP AUTH switched off for the mailbox, then for the tenant.
check(admin("/smtp-auth", {"mailbox": ALICE, "setting": "disabled"})[0] == 200, "smtp-auth mailbox")
code, reply = smtp_auth(tok["access_token"])
check(code == 535 and reply.startswith("5.7.139") and "disabled for the Mailbox" in reply, "mailbox off: %d %s" % (code, reply))
check(admin("/smtp-auth", {"mailbox": ALICE, "setting": ""})[0] == 200, "smtp-auth mailbox follow tenant")
check(admin("/smtp-auth", {"tenant": TENANT, "disabled": True})[0] == 200, "smtp-auth tenant")
code, reply = smtp_auth(tok["access_token"])
check(code == 535 and "disabled for the Tenant" in reply, "tenant off: %d %s" % (code, reply))
check(admin("/smtp-auth", {"mailbox": ALICE, "setting": "enabled"})[0] == 200, "smtp-auth mailbox on")

# A revoked sign-in: the refresh token is refused with AADSTS50173.
st, tok2, _ = sign_in()
check(admin("/users/revoke", {"upn": ALICE})[0] == 200, "revoke")
st, body, _ = refresh(tok2["refresh_token"])
check(st == 400 and codes(body) == ("invalid_grant", 50173), "after revoke: %d %s" % (st, body))

# The 90-day lapse: an unused refresh token dies (AADSTS700082).
st, tok3, _ = sign_in()
st, body = admin("/clock/advance", {"duration": "2184h"})  # 91 days
check(st == 200, "advance: %d %s" % (st, body))
st, body, _ = refresh(tok3["refresh_token"])
check(st == 400 and codes(body) == ("invalid_grant", 700082), "after 91 days: %d %s" % (st, body))

# A Conditional Access policy blocks the device code flow (AADSTS53003).
check(admin("/conditional-access", {"tenant": TENANT, "block_device_code_flow": True})[0] == 200, "conditional access")
st, body, _ = sign_in()
check(st == 400 and codes(body) == ("interaction_required", 53003), "blocked flow: %d %s" % (st, body))
check(admin("/conditional-access", {"tenant": TENANT, "block_device_code_flow": False})[0] == 200, "unblock")

# An expired client secret (AADSTS7000222).
cc = {"grant_type": "client_credentials", "client_id": DAEMON_APP, "client_secret": DAEMON_SECRET,
      "scope": "https://outlook.office365.com/.default"}
st, body, _ = entra("/oauth2/v2.0/token", cc)
check(st == 200, "client credentials: %d %s" % (st, body))
check(admin("/apps/expire-secrets", {"client_id": DAEMON_APP})[0] == 200, "expire secret")
st, body, _ = entra("/oauth2/v2.0/token", cc)
check(st == 401 and codes(body) == ("invalid_client", 7000222), "expired secret: %d %s" % (st, body))

# Faults: 429 with Retry-After, a reset connection, an SMTP 421 banner.
check(admin("/faults/http", {"path": "/devicecode", "status": 429, "retry_after_seconds": 7})[0] == 200, "http fault")
st, body, headers = entra("/oauth2/v2.0/devicecode", {"client_id": DEVICE_APP, "scope": SCOPE})
check(st == 429 and headers.get("Retry-After") == "7", "429 fault: %d %s" % (st, dict(headers)))
check(admin("/faults/http", {"path": "/devicecode", "reset": True})[0] == 200, "reset fault")
try:
    entra("/oauth2/v2.0/devicecode", {"client_id": DEVICE_APP, "scope": SCOPE})
    check(False, "reset fault: got an answer")
except (ConnectionError, urllib.error.URLError, OSError):
    pass
check(admin("/faults/smtp", {"stage": "banner", "reply": "421 4.3.2 Service not available"})[0] == 200, "smtp fault")
host, port = INFO["smtp"].rsplit(":", 1)
try:
    smtplib.SMTP(host, int(port), timeout=30)
    check(False, "421 banner: connected")
except smtplib.SMTPConnectError as e:
    check(e.smtp_code == 421, "421 banner: %s" % e)

# Microsoft Graph: the switches next to SMTP AUTH's.
GRAPH_SCOPE = "https://graph.microsoft.com/Mail.Send offline_access"


def graph_token(rt):
    return entra("/oauth2/v2.0/token", {"grant_type": "refresh_token", "client_id": DEVICE_APP,
                                        "refresh_token": rt, "scope": GRAPH_SCOPE})


def send_mail(access_token):
    """POSTs a small message to Graph's sendMail; returns (status, JSON body or {}, headers)."""
    msg = {"message": {"subject": "scan", "body": {"contentType": "Text", "content": "page"},
                       "toRecipients": [{"emailAddress": {"address": "bob@contoso.com"}}]}}
    req = urllib.request.Request(INFO["authority"] + "/v1.0/me/sendMail", data=json.dumps(msg).encode())
    req.add_header("Authorization", "Bearer " + access_token)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=CTX, timeout=30) as r:
            return r.status, {}, r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.load(e), e.headers


st, tok4, _ = sign_in()
check(st == 200, "sign-in for Graph: %d %s" % (st, tok4))
# The app has no Graph permission yet: consent_required (AADSTS65001).
st, body, _ = graph_token(tok4["refresh_token"])
check(st == 400 and codes(body) == ("invalid_grant", 65001), "Graph without consent: %d %s" % (st, body))
# Add Mail.Send to the app (admin-consented in the tenant): a Graph token
# from the same refresh token, and sendMail answers 202.
check(admin("/apps/permissions", {"client_id": DEVICE_APP,
                                  "add": ["https://graph.microsoft.com/Mail.Send"]})[0] == 200, "add Mail.Send")
st, gtok, _ = graph_token(tok4["refresh_token"])
check(st == 200, "Graph token after consent: %d %s" % (st, gtok))
st, body, _ = send_mail(gtok["access_token"])
check(st == 202, "sendMail: %d %s" % (st, body))
# Throttled mailbox: 429 with Retry-After, then 202 again.
check(admin("/graph/throttle", {"mailbox": ALICE, "count": 1, "retry_after_seconds": 30})[0] == 200, "graph throttle")
st, body, headers = send_mail(gtok["access_token"])
check(st == 429 and headers.get("Retry-After") == "30", "throttled sendMail: %d %s %s" % (st, body, dict(headers)))
st, body, _ = send_mail(gtok["access_token"])
check(st == 202, "sendMail after the throttle: %d %s" % (st, body))
# A mailbox Graph cannot reach: 404 MailboxNotEnabledForRESTAPI.
check(admin("/graph/rest", {"mailbox": ALICE, "enabled": False})[0] == 200, "graph rest off")
st, body, _ = send_mail(gtok["access_token"])
check(st == 404 and body.get("error", {}).get("code") == "MailboxNotEnabledForRESTAPI", "REST off: %d %s" % (st, body))
check(admin("/graph/rest", {"mailbox": ALICE, "enabled": True})[0] == 200, "graph rest on")
# Graph consent withdrawn for everyone: the refresh for Graph is
# consent_required again; SMTP's still works.
check(admin("/consent/revoke", {"client_id": DEVICE_APP, "upn": "",
                                "resource": "https://graph.microsoft.com"})[0] == 200, "revoke Graph consent")
st, body, _ = graph_token(gtok["refresh_token"])
check(st == 400 and codes(body) == ("invalid_grant", 65001), "Graph after revocation: %d %s" % (st, body))
st, body, _ = refresh(gtok["refresh_token"])
check(st == 200, "SMTP refresh after the Graph revocation: %d %s" % (st, body))
st, body = admin("/consent/revoke", {"client_id": "00000000-0000-0000-0000-000000000000", "upn": "",
                                     "resource": "https://graph.microsoft.com"})
check(st == 404, "revoke for an unknown app: %d %s" % (st, body))

print("controlplane: ok")
