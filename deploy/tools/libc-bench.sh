#!/usr/bin/env bash
# musl vs glibc (+crt-static) for the image's binary, both built by deploy/build-static.sh and
# run back to back, alternating: the server's CPU time per echoed WebSocket message
# (benches/loadgen echo, 50 connections, 1 and 32 messages in flight on each), and its memory
# per idle WebSocket (benches/loadgen idle).
#   bash deploy/tools/libc-bench.sh [reps]
set -euo pipefail
cd "$(dirname "$0")/../.."
reps="${1:-3}"
# The builds' own messages go to stderr (a failed build says why); the last line is the binary.
musl="$(deploy/build-static.sh --libc musl | tail -1)"
glibc="$(deploy/build-static.sh --libc glibc | tail -1)"
cargo build --release --locked -q -p loadgen
ls -l "$musl" "$glibc"
pid=""
log="$(mktemp)"
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -f "$log"; true' EXIT
start() { # binary: on loopback, ephemeral ports, read back from its listening line
  RUST_LOG=info ALIVE_INTERVAL="${ALIVE:-0}" PING_INTERVAL=0 BIND=127.0.0.1 ADMIN_BIND=127.0.0.1 \
    PORT=0 ADMIN_PORT=0 "$1" >"$log" 2>&1 &
  pid=$!
  port=""
  for _ in $(seq 50); do
    port="$(sed -n 's/.* listening public=127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log")"
    [ -n "$port" ] && return
    sleep 0.1 # the server's start-up, polled: it writes no other signal
  done
  echo "libc-bench: $1 did not start within 5 s; its log:" >&2
  cat "$log" >&2
  exit 1
}
stop() { kill -TERM "$pid"; wait "$pid"; pid=""; }
loadgen=${CARGO_TARGET_DIR:-target}/release/loadgen
echo_run() { # label binary in-flight
  start "$2"
  "$loadgen" echo --addr "127.0.0.1:$port" --pid "$pid" --connections 50 --in-flight "$3" \
    --size 60 --seconds 8 --warmup 1 --label "$1"
  stop
}
for _ in $(seq "$reps"); do
  for libc in musl glibc; do
    bin=$musl; [ "$libc" = glibc ] && bin=$glibc
    echo_run "$libc" "$bin" 1  # one message in flight per connection
    echo_run "$libc" "$bin" 32 # 32 pipelined per connection: fewer syscalls per message
  done
done
for libc in musl glibc; do
  bin=$musl; [ "$libc" = glibc ] && bin=$glibc
  ALIVE=5s start "$bin"
  printf '%s idle: ' "$libc"
  # Its figures on one line; an error (a non-zero exit) stops the script with its message.
  idle="$("$loadgen" idle --addr "127.0.0.1:$port" \
    --pid "$pid" --connections 5000 --rate 20000 --alive-wait 6)"
  grep -iE 'per|rss' <<<"$idle" | tr '\n' ' '
  echo
  stop
done
