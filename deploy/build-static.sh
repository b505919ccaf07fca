#!/usr/bin/env bash
# Builds the release binary that the container image ships: fully static (glibc with
# +crt-static by default), stripped, panics unwinding, LTO, one codegen unit. The Containerfile
# and the tests (tests/tiers/container.sh) both run this script, so the flags cannot drift.
#
#   deploy/build-static.sh [--libc glibc|musl] [--deps-only] [--out PATH]
#
#   --libc       glibc (default; WSDRAIN_LIBC also sets it) or musl. glibc was chosen by
#                measurement: deploy/tools/libc-bench.sh, numbers in docs/gke.md ("The image").
#   --deps-only  compile only the dependencies, from the manifests and Cargo.lock alone (the
#                Containerfile's cached layer): missing sources get empty stubs, and the
#                stub build of wsdrain itself is removed afterwards so it is never shipped.
#   --out PATH   also copy the binary to PATH.
#
# The last line of stdout is the path of the binary. Artefacts go to target/static
# (CARGO_TARGET_DIR overrides), apart from target/release, so the two builds never
# invalidate or lock each other.
set -euo pipefail
cd "$(dirname "$0")/.."

libc="${WSDRAIN_LIBC:-glibc}"
deps_only=false
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --libc) libc="${2:?--libc needs a value}"; shift 2 ;;
    --deps-only) deps_only=true; shift ;;
    --out) out="${2:?--out needs a path}"; shift 2 ;;
    *) echo "usage: $0 [--libc glibc|musl] [--deps-only] [--out PATH]" >&2; exit 2 ;;
  esac
done
arch="$(uname -m)"
case "$libc" in
  glibc) target="$arch-unknown-linux-gnu" ;;
  musl) target="$arch-unknown-linux-musl" ;;
  *) echo "$0: --libc must be glibc or musl, not '$libc'" >&2; exit 2 ;;
esac

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target" >&2
fi

# The release profile in Cargo.toml already has lto = true and codegen-units = 1; they are
# repeated so the image does not depend on it. strip is set only here: the test and bench
# builds share Cargo.toml's release profile. Panics unwind (not abort): the loop catches a panic
# in one connection's handler, answers that client 1011 and keeps serving the rest
# (src/server/drive.rs, `guarded`); with abort a bug would drop every connection of the pod at once.
# Unwinding costs 21,600 bytes of binary (1,519,200 against 1,497,600 B, measured 2026-12-01).
export CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_PANIC=unwind
export CARGO_PROFILE_RELEASE_STRIP=symbols
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_OPT_LEVEL=3
# Static C runtime (musl's default, glibc's opt-in). Set per target, so build scripts and
# proc-macros (built for the host) are untouched; RUSTFLAGS would override it, so it is cleared.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
triple_var="$(echo "$target" | tr 'a-z-' 'A-Z_')"
export "CARGO_TARGET_${triple_var}_RUSTFLAGS=-C target-feature=+crt-static"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/static}"

if $deps_only; then
  # The root package and every workspace member (the `members = [...]` of Cargo.toml) whose
  # sources are not there yet get an empty lib and main.
  members="$(sed -n '/^\[workspace\]/,/^\[/{/members/,/\]/p}' Cargo.toml | grep -o '"[^"]*"' | tr -d '"')"
  for dir in . $members; do
    if [ -f "$dir/Cargo.toml" ] && [ ! -d "$dir/src" ]; then
      mkdir -p "$dir/src"
      : >"$dir/src/lib.rs"
      echo 'fn main() {}' >"$dir/src/main.rs"
    fi
  done
fi

cargo build --release --locked --target "$target" --bin wsdrain >&2
bin="$CARGO_TARGET_DIR/$target/release/wsdrain"

if $deps_only; then
  cargo clean --release --locked --target "$target" -p wsdrain >&2
  exit 0
fi
if [ -n "$out" ]; then
  mkdir -p "$(dirname "$out")"
  cp "$bin" "$out"
fi
echo "$bin"
