#!/usr/bin/env bash
# Tier: a bounded coverage-guided fuzz run (libFuzzer) of the HTTP and WebSocket input paths.
# Builds the cargo-fuzz targets in fuzz/ with the same instrumentation `cargo fuzz run -s none`
# uses, on the stable toolchain, so nothing has to be installed. Fails on any crash, panic or
# assertion (the targets also check that splitting the input never changes the result).
# FUZZ_SECONDS sets each target's time (default 45).
# For long runs: `cargo install cargo-fuzz && cargo fuzz run http -s none` (docs/testing.md, "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET="${FUZZ_SECONDS:-45}"
target="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
(cd fuzz && cargo build --release --locked --target "$target" --target-dir ../target/fuzz)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for name in http websocket; do
  mkdir -p "$work/$name" target/fuzz-artifacts/$name
  cp fuzz/seeds/$name/* "$work/$name/"
  echo "fuzzing $name for ${SECONDS_PER_TARGET}s"
  if ! "target/fuzz/$target/release/$name" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 \
      -timeout=10 -artifact_prefix="target/fuzz-artifacts/$name/" -print_final_stats=1 \
      "$work/$name" >"$work/$name.log" 2>&1; then
    tail -n 40 "$work/$name.log"
    echo "fuzz target $name failed; the input is in target/fuzz-artifacts/$name/"
    exit 1
  fi
  grep -E '^Done|stat::number_of_executed_units' "$work/$name.log" | head -2
done
