#!/bin/sh
# Runs msmtp against the oauthmail emulator: starts "oauthmail emulator",
# signs alice@contoso.com in with "oauthmail login" (auto-approved by the
# emulator), writes an msmtp configuration whose passwordeval is
# "oauthmail token", sends one message with msmtp, and prints what the
# emulated mailbox received. Needs msmtp and jq. Run from the repository root:
#
#   sh examples/msmtp/run-emulator.sh
set -eu
work=$(mktemp -d)
trap 'kill "$emu_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/oauthmail" ./cmd/oauthmail
"$work/oauthmail" emulator --auto-approve alice@contoso.com >"$work/emulator.json" 2>"$work/emulator.log" &
emu_pid=$!
for _ in $(seq 50); do [ -s "$work/emulator.json" ] && break; sleep 0.1; done
info=$(head -n1 "$work/emulator.json")
authority=$(echo "$info" | jq -r .authority)
tenant=$(echo "$info" | jq -r .tenant)
client=$(echo "$info" | jq -r '.client_ids[0]')
smtp=$(echo "$info" | jq -r .smtp)
ca=$(echo "$info" | jq -r .ca_file)
messages=$(echo "$info" | jq -r .messages_url)

store="file:$work/tokens"
"$work/oauthmail" login --no-qr --store "$store" --account printer \
  --tenant "$tenant" --client-id "$client" --authority "$authority" --ca-file "$ca"

cat >"$work/msmtprc" <<CONF
defaults
tls            on
tls_starttls   on
tls_trust_file $ca

account        emulator
host           ${smtp%:*}
port           ${smtp##*:}
auth           xoauth2
user           alice@contoso.com
from           alice@contoso.com
passwordeval   "$work/oauthmail token --store $store --account printer --ca-file $ca"

account default : emulator
CONF
chmod 600 "$work/msmtprc"

printf 'Subject: hello from msmtp\n\nSent by msmtp with a token from oauthmail.\n' |
  msmtp -C "$work/msmtprc" bob@contoso.com
echo "msmtp exit status: $?"
curl -s --cacert "$ca" "$messages" | jq '.[] | {from, to, user}'
