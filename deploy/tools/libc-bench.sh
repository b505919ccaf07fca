#!/usr/bin/env bash
# musl vs glibc (+crt-static) for the image's binary, both built by deploy/build-static.sh and
# run back to back, alternating: the server's CPU time (utime + stime) per echoed WebSocket
# message, and its memory per idle WebSocket (benches/loadgen idle).
#   bash deploy/tools/libc-bench.sh [reps]
set -euo pipefail
cd "$(dirname "$0")/../.."
reps="${1:-3}"
musl="$(deploy/build-static.sh --libc musl 2>/dev/null | tail -1)"
glibc="$(deploy/build-static.sh --libc glibc 2>/dev/null | tail -1)"
cargo build --release --locked -q -p loadgen
ls -l "$musl" "$glibc"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT
start() { # binary
  RUST_LOG=warn ALIVE_INTERVAL="${ALIVE:-0}" PING_INTERVAL=0 "$1" --port 28480 --admin-port 29490 \
    >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -fs http://127.0.0.1:29490/readyz >/dev/null && break; sleep 0.1; done
}
stop() { kill -TERM "$pid"; wait "$pid"; pid=""; }
echo_run() { # label binary messages depth
  start "$2"
  python3 deploy/tools/wsprobe.py echo-cpu --port 28480 --pid "$pid" --connections 50 \
    --messages "$3" --depth "$4" --label "$1 "
  stop
}
for _ in $(seq "$reps"); do
  for libc in musl glibc; do
    bin=$musl; [ "$libc" = glibc ] && bin=$glibc
    echo_run "$libc" "$bin" 300000 1     # one message in flight per connection
    echo_run "$libc" "$bin" 2000000 32   # 32 pipelined per connection: fewer syscalls per message
  done
done
for libc in musl glibc; do
  bin=$musl; [ "$libc" = glibc ] && bin=$glibc
  ALIVE=5s start "$bin"
  printf '%s idle: ' "$libc"
  "${CARGO_TARGET_DIR:-target}/release/loadgen" idle --addr 127.0.0.1:28480 --pid "$pid" \
    --connections 5000 --rate 20000 --alive-wait 6 2>&1 | grep -iE 'per|rss' | tr '\n' ' '
  echo
  stop
done
