#!/usr/bin/env bash
# The project's test command (README "Run the tests"; CI runs it through .ci/run).
# Tier 1 needs only Rust: formatting, lints, unit and integration tests.
# Later tiers need outside tools; each installs what it needs when missing and has its own time limit.
set -euo pipefail
cd "$(dirname "$0")/.."

tier() { printf '\n==> %s\n' "$*"; }

tier "rustfmt"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

tier "clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

tier "cargo test"
# test-faults: the panic trigger one test needs (a cargo feature no release build enables).
# --workspace: the test kit's and the tools' own unit tests too (the rollout harness's ran with
# the server's until it became a package of its own).
# Its own limit, far above its 5 minutes (compiling included), so a hung test fails the run.
timeout --kill-after=10 900 cargo test --workspace --locked --features wsdrain/test-faults

# The release binaries every later tier runs, built once here: a cold build with LTO takes
# minutes, which would otherwise count against the first tier's own time limit.
tier "release build (wsdrain, rollout, loadgen, peer)"
cargo build --release --locked -p wsdrain -p rollout -p peer -p loadgen

# Each outside-tool tier's time limit, in seconds; a tier whose steps have limits of their own
# reads it to keep their sum inside it.
export TIER_SECONDS=240
for script in tests/tiers/*.sh; do
  [ -e "$script" ] || continue
  tier "$script"
  started=$SECONDS
  timeout --kill-after=10 "$TIER_SECONDS" bash "$script"
  printf '%s: %d s\n' "$script" $((SECONDS - started))
done

printf '\nall tiers passed in %d s\n' "$SECONDS"
