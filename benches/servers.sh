# shellcheck shell=bash
# Sourced by the bench scripts (from the repository root): builds the release binaries and
# starts and stops the servers under test the same way everywhere. Servers run on core 0 and the
# load generator on core 1 (the commands in the arrays $pin_server, $pin_client) when taskset
# exists. Each server's log goes
# to $logdir (a temporary directory, removed at exit, unless the script set one). Servers:
# - wsdrain (optionally with ENV=VALUE settings), wsdrain-old (the binary in $OLD_WSDRAIN, for a
#   before/after comparison);
# - peer-default, peer-4k: tokio + tokio-tungstenite (benches/peer), no alive messages;
# - uws, uws-publish, uws-spread: uWebSockets (benches/uws/echo.cpp), the binary in $UWS_BIN
#   (default ${CARGO_TARGET_DIR:-target}/uws/echo), built outside this script (see
#   docs/benchmarks.md, "uWebSockets." under "The peers");
#   alive messages by one send per socket, all in one tick (uws), by uWS's publish to a topic
#   (uws-publish), or one send per socket spread over a 100 ms grid as wsdrain spreads them
#   (uws-spread);
# - node-ws: Node.js + ws (benches/node-ws), when node is installed; its pinned ws is installed
#   here with npm ci (from package-lock.json) when it is missing;
# - nginx: static files only, the same static/ directory, one process (master_process off, so
#   its own CPU time is the server's), no access log, sendfile, an open-file cache and
#   keep-alive without a request limit: nginx as one would tune it for static files.
# ALIVE_INTERVAL=5s / 1s / 500ms / 0 among a start's settings is wsdrain's setting, and the
# uws and node-ws peers' --alive-ms; `available NAME` says whether NAME can start here.

cargo build --release --locked -p wsdrain -p peer -p loadgen >&2
# Where cargo put them: under CARGO_TARGET_DIR when it is set, as cargo does.
bin=${CARGO_TARGET_DIR:-target}/release
uws_bin=${UWS_BIN:-${CARGO_TARGET_DIR:-target}/uws/echo}
node_ws=benches/node-ws
nginx_bin=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
if command -v node >/dev/null && command -v npm >/dev/null && [ ! -d "$node_ws/node_modules/ws" ]; then
  # Few, short retries: with the registry out of reach, npm's defaults wait over a minute
  # before giving up, and this peer is optional.
  (cd "$node_ws" && timeout 60 npm ci --no-audit --no-fund --loglevel=error \
    --fetch-retries=1 --fetch-retry-mintimeout=1000 --fetch-retry-maxtimeout=2000 >&2) ||
    echo "node-ws: npm ci failed in $node_ws" >&2
fi
# Commands that prefix a server's and loadgen's command line (empty without taskset).
pin_server=(taskset -c 0)
# shellcheck disable=SC2034 # read by the sourcing scripts (and echo_load below)
pin_client=(taskset -c 1)
command -v taskset >/dev/null || { pin_server=(); pin_client=(); }
own_logdir=""
[ -n "${logdir:-}" ] || { logdir=$(mktemp -d); own_logdir=$logdir; }

pids=()
cleanup_servers() {
  for p in "${pids[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -z "$own_logdir" ] || rm -rf "$own_logdir"
}
trap cleanup_servers EXIT

# start NAME ENV... : starts a server on a free port; sets $port, $admin (wsdrain) and $pid.
# Each start logs to a file of its own ($logdir/NAME.N.log, N counting up): with one
# file per name, a second start could read the previous instance's "listening" line before the
# new process truncated the file, and connect to a dead port.
# available NAME: true when NAME can be started here; otherwise false, with one line on stderr
# saying why and what to do.
available() {
  case $1 in
    uws*)
      [ -x "$uws_bin" ] && return
      echo "uWebSockets: skipped (no peer binary at $uws_bin: build benches/uws/echo.cpp against a uWebSockets checkout with uSockets, or set UWS_BIN; see docs/benchmarks.md)" >&2
      return 1 ;;
    nginx)
      [ -x "$nginx_bin" ] && return
      echo "nginx: skipped (not installed: apt-get install nginx-light, or set NGINX)" >&2; return 1 ;;
    node-ws)
      if ! command -v node >/dev/null; then
        echo "node-ws: skipped (node is missing)" >&2; return 1
      fi
      [ -d "$node_ws/node_modules/ws" ] && return
      echo "node-ws: skipped (ws is not installed: npm ci in $node_ws)" >&2
      return 1 ;;
  esac
}

# available_servers NAME...: the names among these that can be started here (a line on stderr
# for each that cannot).
available_servers() {
  local s list=""
  for s in "$@"; do available "$s" && list="$list $s"; done
  echo "${list# }"
}

# sends_alive NAME: true when NAME sends alive messages (given ALIVE_INTERVAL).
sends_alive() { case $1 in wsdrain* | uws* | node-ws) return 0 ;; *) return 1 ;; esac; }

# alive_ms ENV...: the ALIVE_INTERVAL among these settings, in milliseconds (0 when absent);
# whole numbers with s or ms, as the peers take milliseconds.
alive_ms() {
  local a v ms=0
  for a in "$@"; do
    case $a in
      ALIVE_INTERVAL=*) v=${a#*=}
        case $v in
          *ms) ms=${v%ms} ;;
          *s) ms=$((${v%s} * 1000)) ;;
          *) ms=$v ;;
        esac ;;
    esac
  done
  echo "$ms"
}

start() {
  local name=$1; shift
  local n=1
  while [ -e "$logdir/$name.$n.log" ]; do n=$((n + 1)); done
  local log="$logdir/$name.$n.log"
  : >"$log"
  case $name in
    wsdrain-old) env RUST_LOG=info BIND=127.0.0.1 ADMIN_BIND=127.0.0.1 PORT=0 ADMIN_PORT=0 "$@" \
                   "${pin_server[@]}" "${OLD_WSDRAIN:?set OLD_WSDRAIN to the older wsdrain binary}" >"$log" 2>&1 & ;;
    wsdrain*) env RUST_LOG=info BIND=127.0.0.1 ADMIN_BIND=127.0.0.1 PORT=0 ADMIN_PORT=0 "$@" \
                "${pin_server[@]}" "$bin/wsdrain" >"$log" 2>&1 & ;;
    peer-4k)  "${pin_server[@]}" "$bin/peer" --port 0 --buffers 4k >"$log" 2>&1 & ;;
    peer*)    "${pin_server[@]}" "$bin/peer" --port 0 --buffers default >"$log" 2>&1 & ;;
    uws-publish) "${pin_server[@]}" "$uws_bin" --port 0 --alive-ms "$(alive_ms "$@")" --fanout publish >"$log" 2>&1 & ;;
    uws-spread) "${pin_server[@]}" "$uws_bin" --port 0 --alive-ms "$(alive_ms "$@")" --fanout spread >"$log" 2>&1 & ;;
    uws)      "${pin_server[@]}" "$uws_bin" --port 0 --alive-ms "$(alive_ms "$@")" --fanout each >"$log" 2>&1 & ;;
    node-ws)  "${pin_server[@]}" node "$node_ws/server.mjs" --port 0 --alive-ms "$(alive_ms "$@")" >"$log" 2>&1 & ;;
    nginx)    start_nginx "$log" "$logdir/nginx.$n" ;;
    *) echo "start: unknown server $name" >&2; exit 2 ;;
  esac
  pid=$!
  pids+=("$pid")
  # wsdrain logs "listening public=127.0.0.1:PORT admin=127.0.0.1:PORT ..."; the peers print
  # "listening ADDR". ($pid is the server itself: taskset and env exec it.)
  for _ in $(seq 1 200); do
    port=$(sed -n 's/.*listening \(public=\)\{0,1\}127.0.0.1:\([0-9]*\).*/\2/p' "$log" | head -1)
    # shellcheck disable=SC2034 # read by the sourcing scripts (metric below)
    admin=$(sed -n 's/.* admin=127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && return
    sleep 0.05
  done
  echo "$name did not start; log:" >&2; cat "$log" >&2; exit 1
}

# start_nginx LOG DIR: nginx serving static/ on a free port from DIR (its configuration, pid
# and error log); writes "listening 127.0.0.1:PORT" to LOG once the port takes connections, as
# the other servers print it. It leaves nginx as the last background job ($!), which start takes
# as $pid.
start_nginx() {
  local log=$1 dir=$2 nginx_port
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd) # nginx takes paths relative to its prefix
  nginx_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  types { text/html html; text/css css; text/javascript js; }
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  open_file_cache max=64 inactive=60s;
  open_file_cache_valid 60s;
  keepalive_requests 100000000;
  keepalive_timeout 75s;
  server {
    listen 127.0.0.1:$nginx_port;
    root $PWD/static;
  }
}
CONF
  "${pin_server[@]}" "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$log" 2>&1 &
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null; then
      echo "listening 127.0.0.1:$nginx_port" >>"$log"
      return
    fi
    sleep 0.05
  done
}

# stop: kills the server started last and reaps it, and takes it off the list the exit kills: a
# long run's pids wrap, and a kill -9 at exit could then name an unrelated process.
stop() {
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local p kept=()
  for p in "${pids[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  pids=(${kept[@]+"${kept[@]}"})
}

# turned R WORD...: the words turned left by R places (round r starts with the r-th server), as
# run.sh and profile.sh turn the servers each round.
turned() {
  local r=$1; shift
  local words=("$@") i
  for ((i = 0; i < $#; i++)); do echo "${words[$(((i + r) % $#))]}"; done
}

# echo_load ARG...: the echo load of every bench script (100 connections x 16 messages in flight
# x 32 B) on the client's core, against the server started last ($port, $pid); ARGs follow it
# (--seconds, --warmup, --label, --csv, --rate...). One place, so run.sh, repeat.sh and
# profile.sh measure the same thing.
echo_load() {
  "${pin_client[@]}" "$bin/loadgen" echo --addr "127.0.0.1:$port" --pid "$pid" --connections 100 \
    --in-flight 16 --size 32 "$@"
}

# fanout_load ARG...: the fan-out load (idle WebSockets that count the server's alive messages)
# on the client's core, against the server started last ($port, $pid); ARGs follow it
# (--connections, --seconds, --warmup, --label, --csv). Run in the background, $! is the
# function's shell, not loadgen: wait on it, do not read its CPU time (fanout_start does that).
fanout_load() {
  "${pin_client[@]}" "$bin/loadgen" fanout --addr "127.0.0.1:$port" --pid "$pid" "$@"
}

# fanout_start ARG...: fanout_load's command, started in the background by the function itself,
# in the caller's shell (so call it as is, not in $(...) nor with &), which sets $lg to loadgen's
# own pid (taskset execs it): the caller can read its CPU time, wait on it or kill it. Redirect
# the call to redirect loadgen's output (fanout_start ... >FILE 2>&1). It does not wait for the
# connections to open: the caller paces itself.
fanout_start() {
  "${pin_client[@]}" "$bin/loadgen" fanout --addr "127.0.0.1:$port" --pid "$pid" "$@" &
  # shellcheck disable=SC2034 # read by the calling scripts
  lg=$!
}

# last_row FILE COLUMN...: the named columns of the last row of FILE (a loadgen CSV), joined by
# commas; fails, saying which, when the file has no row or no such column. By name, as
# benches/report/results.py reads them: a new column does not shift the others.
last_row() {
  python3 - "$@" <<'PY'
import csv, sys
path, names = sys.argv[1], sys.argv[2:]
with open(path) as f:
    rows = list(csv.DictReader(f))
if not rows:
    sys.exit(f"{path}: no rows")
missing = [n for n in names if n not in rows[-1]]
if missing:
    sys.exit(f"{path}: no column {', '.join(missing)}")
print(",".join(rows[-1][n] for n in names))
PY
}

# metric NAME: the value of wsdrain's metric NAME on its admin port ($admin, set by start); fails
# with a line saying so when the server has no admin port or no such metric.
metric() {
  python3 - "${admin:-}" "$1" <<'PY'
import sys, urllib.request
admin, name = sys.argv[1], sys.argv[2]
if not admin:
    sys.exit(f"metric {name}: the server has no admin port (not wsdrain?)")
url = f"http://127.0.0.1:{admin}/metrics"
try:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
except OSError as e:
    sys.exit(f"metric {name}: cannot read {url}: {e}")
for line in text.splitlines():
    if line.startswith(name + " "):
        print(line.split()[1])
        break
else:
    sys.exit(f"metric {name}: not in {url}")
PY
}
