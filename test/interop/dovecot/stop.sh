#!/usr/bin/env bash
# Stop the Dovecot peer and its sink that start.sh started (recorded pids only).
set -u
S="${INTEROP_DOVECOT_STATE:-${TMPDIR:-/tmp}/devicemail-interop-dovecot}"
for f in "$S/run/master.pid" "$S/sink.pid"; do
  [ -s "$f" ] || continue
  pid="$(cat "$f")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$f"
done
