#!/usr/bin/env bash
# Installs everything kraken's tests and demo need on a fresh machine (Debian with Node/npm and Go):
# the pinned Deno from npm, skopeo, redis-server, openssl and python3 from apt, promtool from Debian's
# prometheus package, the Go programs listed in scripts/go-tools.tsv (Jaeger, …) built from the Go
# module proxy and cached, and moto's S3 server from PyPI in a cached virtualenv. Safe to run again: each step is skipped when its result is already there.
set -euo pipefail
# deno task/bundle/install would otherwise try to resolve package.json's toolchain pin.
export DENO_NO_PACKAGE_JSON=1
cd "$(dirname "$0")/.."

# buf and protoc-gen-es (devDependencies) regenerate wire/p2p_pb.ts; a test checks it is current.
if [[ ! -x node_modules/.bin/deno ]] || ! node_modules/.bin/deno --version >/dev/null 2>&1 ||
  [[ ! -x node_modules/.bin/buf ]]; then
  # npm install, not npm ci: it still succeeds when a registry lacks another platform's optional
  # Deno package. package-lock.json lists every platform's, as npm install writes it, so the install
  # leaves it unchanged.
  npm install --no-audit --no-fund --loglevel=error
fi

missing=()
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# The registry backend test signs its token server's JWTs with a certificate openssl makes; the
# http backend test serves blobs with python3's http.server.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# moto's virtualenv (below) needs venv and ensurepip.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
apt_updated=""
if ((${#missing[@]} > 0)); then
  $sudo apt-get update -qq
  apt_updated=1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# One build at a time: each `go build` already uses every core.
while read -r name module version package check_arg; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  bash scripts/install-go-tool.sh "$name" "$module" "$version" "$package" "${check_arg:---help}" </dev/null
done <scripts/go-tools.tsv
# promtool (tests/harness/promtool.ts) from Debian's prometheus package: unpacked into the cache,
# not installed, so no Prometheus server is set up or started. Built from source it took ~8 minutes.
cache="${KRAKEN_CACHE:-$HOME/.cache/kraken}"
if ! "$cache/promtool-debian/promtool" --version >/dev/null 2>&1; then
  deb_dir=$(mktemp -d)
  if ! (cd "$deb_dir" && apt-get download -qq prometheus 2>/dev/null); then
    [[ -z "$apt_updated" ]] && $sudo apt-get update -qq
    (cd "$deb_dir" && apt-get download -qq prometheus)
  fi
  dpkg-deb -x "$deb_dir"/prometheus_*.deb "$deb_dir/root"
  mkdir -p "$cache/promtool-debian"
  mv "$deb_dir/root/usr/bin/promtool" "$cache/promtool-debian/promtool"
  rm -rf "$deb_dir"
fi
# moto's S3 server (tests/harness/s3.ts), pinned, in a cached virtualenv. SeaweedFS would be the
# real store of choice, but it takes over 30 minutes to build cold on 2 cores.
moto_version=5.2.5
moto_dir="$cache/moto-$moto_version"
if [[ ! -x "$moto_dir/bin/moto_server" ]]; then
  rm -rf "$moto_dir"
  python3 -m venv "$moto_dir"
  "$moto_dir/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
fi
# Fetch and cache the npm dependencies of the import map once, before tests run in parallel.
node_modules/.bin/deno install --quiet --entrypoint main.ts tests/harness/jaeger.ts \
  tests/harness/registry.ts
