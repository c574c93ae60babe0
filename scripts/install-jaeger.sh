#!/usr/bin/env bash
# Builds the Jaeger v2 binary that the flow tests and the demo use, and caches it.
#
# Jaeger v2 is published as github.com/jaegertracing/jaeger (tag v1.76.0 carries the v2 `cmd/jaeger`).
# `go install <module>@<version>` refuses that module because its go.mod has `replace` directives, so
# the script downloads the module source through the Go module proxy, copies it to a writable
# temporary directory and runs `go build` there. Nothing from Jaeger is copied into this repository.
#
# Usage: scripts/install-jaeger.sh
# Environment:
#   JAEGER_BIN     an existing executable Jaeger binary; when set and executable, nothing is built.
#   KRAKEN_CACHE   cache root (default: $HOME/.cache/kraken); the binary lands in
#                  $KRAKEN_CACHE/jaeger-v1.76.0/jaeger.
# Prints one line naming the binary on success.
set -euo pipefail

readonly JAEGER_MODULE="github.com/jaegertracing/jaeger"
readonly JAEGER_VERSION="v1.76.0"

# A binary counts as installed only if it actually runs, so a truncated build is rebuilt.
runs() {
  [[ -x "$1" ]] && "$1" --help >/dev/null 2>&1
}

if [[ -n "${JAEGER_BIN:-}" ]]; then
  if runs "$JAEGER_BIN"; then
    echo "jaeger: using JAEGER_BIN=$JAEGER_BIN"
    exit 0
  fi
  echo "install-jaeger: JAEGER_BIN=$JAEGER_BIN is set but is not a runnable Jaeger binary" >&2
  exit 1
fi

cache_dir="${KRAKEN_CACHE:-$HOME/.cache/kraken}/jaeger-${JAEGER_VERSION}"
target="$cache_dir/jaeger"
if runs "$target"; then
  echo "jaeger: $target"
  exit 0
fi

command -v go >/dev/null 2>&1 || {
  echo "install-jaeger: the Go toolchain is required to build Jaeger (go not found on PATH)" >&2
  exit 1
}

work="$(mktemp -d "${TMPDIR:-/tmp}/kraken-jaeger-build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT

# `go mod download` needs a module context; a throwaway one keeps the caller's directory untouched.
(cd "$work" && go mod init kraken-jaeger-fetch >/dev/null 2>&1)
src_dir="$(cd "$work" && go mod download -json "${JAEGER_MODULE}@${JAEGER_VERSION}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "$src_dir" || ! -d "$src_dir" ]]; then
  echo "install-jaeger: could not download ${JAEGER_MODULE}@${JAEGER_VERSION} from the module proxy" >&2
  exit 1
fi

# The module cache is read-only; the build writes go.sum updates, so it runs on a writable copy.
cp -R "$src_dir" "$work/src"
chmod -R u+w "$work/src"

mkdir -p "$cache_dir"
# Build to a temporary name and rename, so an interrupted build never leaves a half-written binary.
# -mod=mod lets the build update go.sum itself; the caller's other GOFLAGS still apply.
goflags="$(go env GOFLAGS)"
(cd "$work/src" && GOFLAGS="${goflags:+$goflags }-mod=mod" go build -o "$cache_dir/jaeger.tmp.$$" ./cmd/jaeger) 2>"$work/build.log" || {
  echo "install-jaeger: go build failed; last lines of the build log:" >&2
  tail -n 30 "$work/build.log" >&2
  rm -f "$cache_dir/jaeger.tmp.$$"
  exit 1
}
mv -f "$cache_dir/jaeger.tmp.$$" "$target"
runs "$target" || {
  echo "install-jaeger: built $target but it does not run" >&2
  exit 1
}

echo "jaeger: $target"
