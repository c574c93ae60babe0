#!/usr/bin/env bash
# Builds one Go program that the tests or the demo run (Jaeger, SeaweedFS, the reference registry, …)
# from the Go module proxy, and caches it. Nothing from the program is copied into this repository.
#
# `go install <module>@<version>` refuses modules whose go.mod has `replace` directives, so the
# script downloads the module source through the Go module proxy, copies it to a writable temporary
# directory and runs `go build` there; that works for every module, with or without them.
#
# Usage: scripts/install-go-tool.sh NAME MODULE VERSION PACKAGE [CHECK_ARG]
#   NAME       binary name; it lands in $KRAKEN_CACHE/NAME-VERSION/NAME
#   MODULE     module path (github.com/jaegertracing/jaeger)
#   VERSION    module version (v1.76.0)
#   PACKAGE    package to build, relative to the module root (./cmd/jaeger)
#   CHECK_ARG  argument that makes the binary exit 0 without side effects (default --help); the
#              binary counts as installed only if `NAME CHECK_ARG` succeeds, so a truncated build is
#              rebuilt
# Environment:
#   KRAKEN_CACHE   cache root (default: $HOME/.cache/kraken)
#   <NAME>_BIN     (upper-cased NAME, e.g. JAEGER_BIN) an existing binary to use instead
# Prints one line naming the binary on success.
set -euo pipefail

if (($# < 4)); then
  echo "usage: $0 NAME MODULE VERSION PACKAGE [CHECK_ARG]" >&2
  exit 2
fi
readonly name="$1" module="$2" version="$3" package="$4" check_arg="${5:---help}"

runs() {
  [[ -x "$1" ]] && "$1" "$check_arg" >/dev/null 2>&1
}

override_var="$(tr '[:lower:]-' '[:upper:]_' <<<"$name")_BIN"
override="${!override_var:-}"
if [[ -n "$override" ]]; then
  if runs "$override"; then
    echo "$name: using $override_var=$override"
    exit 0
  fi
  echo "install-go-tool: $override_var=$override is set but does not run ($override $check_arg failed)" >&2
  exit 1
fi

cache_dir="${KRAKEN_CACHE:-$HOME/.cache/kraken}/${name}-${version}"
target="$cache_dir/$name"
if runs "$target"; then
  echo "$name: $target"
  exit 0
fi

command -v go >/dev/null 2>&1 || {
  echo "install-go-tool: the Go toolchain is required to build $name (go not found on PATH)" >&2
  exit 1
}

echo "$name: building ${module}@${version} (cached afterwards)"
work="$(mktemp -d "${TMPDIR:-/tmp}/kraken-${name}-build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT

# `go mod download` needs a module context; a throwaway one keeps the caller's directory untouched.
(cd "$work" && go mod init "kraken-${name}-fetch" >/dev/null 2>&1)
src_dir="$(cd "$work" && go mod download -json "${module}@${version}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "$src_dir" || ! -d "$src_dir" ]]; then
  echo "install-go-tool: could not download ${module}@${version} from the module proxy" >&2
  exit 1
fi

# The module cache is read-only; the build writes go.sum updates, so it runs on a writable copy.
cp -R "$src_dir" "$work/src"
chmod -R u+w "$work/src"

mkdir -p "$cache_dir"
# Build to a temporary name and rename, so an interrupted build never leaves a half-written binary.
# -mod=mod lets the build update go.sum itself; the caller's other GOFLAGS still apply. GOWORK=off:
# a module that ships a go.work (Prometheus does) would otherwise refuse -mod=mod.
goflags="$(go env GOFLAGS)"
(cd "$work/src" && GOWORK=off CGO_ENABLED=0 GOFLAGS="${goflags:+$goflags }-mod=mod" \
  go build -trimpath -o "$cache_dir/$name.tmp.$$" "$package") 2>"$work/build.log" || {
  echo "install-go-tool: go build of $name failed; last lines of the build log:" >&2
  tail -n 30 "$work/build.log" >&2
  rm -f "$cache_dir/$name.tmp.$$"
  exit 1
}
mv -f "$cache_dir/$name.tmp.$$" "$target"
runs "$target" || {
  echo "install-go-tool: built $target but \`$name $check_arg\` fails" >&2
  exit 1
}

echo "$name: $target"
