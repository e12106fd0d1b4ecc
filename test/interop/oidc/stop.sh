#!/usr/bin/env bash
# Stop the oidc-provider peer that start.sh started (by its recorded pid only).
set -u
state="${INTEROP_OIDC_STATE:-${TMPDIR:-/tmp}/devicemail-interop-oidc}"
[ -s "$state/oidc.pid" ] || exit 0
pid="$(cat "$state/oidc.pid")"
kill "$pid" 2>/dev/null || true
for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
rm -f "$state/oidc.pid"
