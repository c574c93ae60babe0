#!/usr/bin/env bash
# Starts a role from the single-file bundle and checks it serves: the bundle must run every role
# without the source tree. Usage: scripts/bundle-smoke.sh dist/kraken.js
set -euo pipefail
bundle=$(realpath "$1")
deno=$(realpath node_modules/.bin/deno)
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/origin.yaml" <<YAML
listen: { host: 127.0.0.1, port: $port }
storage: { root: store }
backends:
  - namespace: ".*"
    backend: { file: { root: backend } }
tracing: { enabled: false }
YAML
cd "$work"
"$deno" run --allow-all "$bundle" --role=origin --config=origin.yaml >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "http://127.0.0.1:$port/health" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid"
    echo "bundle: origin started from $(basename "$bundle"), answered /health, stopped cleanly"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
echo "bundle: origin did not come up" >&2
cat "$work/log" >&2
exit 1
