#!/usr/bin/env bash
# Start the oidc-provider peer in the background on 127.0.0.1 and wait until
# its discovery document answers.
#   INTEROP_OIDC_PORT   (default 19400)
#   INTEROP_OIDC_STATE  (default ${TMPDIR:-/tmp}/devicemail-interop-oidc)
#   INTEROP_OIDC_JWT_TYP, INTEROP_OIDC_SLOW_DOWN: see server.mjs
# Runs `npm ci` here first when node_modules is missing (needs the npm registry).
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)"
export INTEROP_OIDC_PORT="${INTEROP_OIDC_PORT:-19400}"
export INTEROP_OIDC_STATE="${INTEROP_OIDC_STATE:-${TMPDIR:-/tmp}/devicemail-interop-oidc}"
state="$INTEROP_OIDC_STATE"
mkdir -p "$state"
if [ ! -f "$dir/node_modules/oidc-provider/package.json" ]; then
  (cd "$dir" && npm ci --no-audit --no-fund >"$state/npm-ci.log" 2>&1) || {
    echo "npm ci failed in $dir; see $state/npm-ci.log" >&2; exit 1; }
fi
node "$dir/server.mjs" >"$state/oidc.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$state/oidc.pid"
url="http://127.0.0.1:$INTEROP_OIDC_PORT/.well-known/openid-configuration"
for _ in $(seq 1 150); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "oidc-provider exited; log:" >&2; cat "$state/oidc.log" >&2; exit 1
  fi
  if node -e "fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" "$url" 2>/dev/null; then
    echo "oidc-provider up at http://127.0.0.1:$INTEROP_OIDC_PORT (pid $pid, state $state)"
    exit 0
  fi
  sleep 0.1
done
echo "oidc-provider did not answer on $url; log:" >&2
cat "$state/oidc.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
