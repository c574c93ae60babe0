#!/usr/bin/env bash
# Installs what the tests need (scripts/setup.sh), then runs every test — unit, multi-process and
# the flows against a real Jaeger — with `deno task test`, and prints a one-line summary.
set -euo pipefail
# deno task/bundle/install would otherwise try to resolve package.json's toolchain pin.
export DENO_NO_PACKAGE_JSON=1
cd "$(dirname "$0")/.."
bash scripts/setup.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
NO_COLOR=1 node_modules/.bin/deno task test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1)
passed=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
if [[ -z "$summary" ]]; then
  echo "tests: no summary line from deno test (exit $status)"
  exit $((status == 0 ? 1 : status))
fi
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
