# Sourced by the bench scripts (from the repository root): builds the release binaries and
# starts and stops the servers under test the same way everywhere. Servers run on core 0 and the
# load generator on core 1 ($pin_server, $pin_client) when taskset exists. Each server's log goes
# to $logdir (a temporary directory, removed at exit, unless the script set one). Servers:
# wsdrain (optionally with ENV=VALUE settings), wsdrain-old (the binary in $OLD_WSDRAIN, for a
# before/after comparison), peer-default, peer-4k.

cargo build --release --locked -p wsdrain -p peer -p loadgen >&2
# Where cargo put them: under CARGO_TARGET_DIR when it is set, as cargo does.
bin=${CARGO_TARGET_DIR:-target}/release
pin_server="taskset -c 0"
pin_client="taskset -c 1"
command -v taskset >/dev/null || { pin_server=""; pin_client=""; }
own_logdir=""
[ -n "${logdir:-}" ] || { logdir=$(mktemp -d); own_logdir=$logdir; }

pids=()
cleanup_servers() {
  for p in "${pids[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -z "$own_logdir" ] || rm -rf "$own_logdir"
}
trap cleanup_servers EXIT

# start NAME ENV... : starts a server on a free port; sets $port, $admin (wsdrain), $pid and
# $server_log. Each start logs to a file of its own ($logdir/NAME.N.log, N counting up): with one
# file per name, a second start could read the previous instance's "listening" line before the
# new process truncated the file, and connect to a dead port.
start() {
  local name=$1; shift
  local n=1
  while [ -e "$logdir/$name.$n.log" ]; do n=$((n + 1)); done
  local log="$logdir/$name.$n.log"
  : >"$log"
  server_log=$log
  case $name in
    wsdrain-old) env RUST_LOG=info BIND=127.0.0.1 ADMIN_BIND=127.0.0.1 PORT=0 ADMIN_PORT=0 "$@" \
                   $pin_server "${OLD_WSDRAIN:?set OLD_WSDRAIN to the older wsdrain binary}" >"$log" 2>&1 & ;;
    wsdrain*) env RUST_LOG=info BIND=127.0.0.1 ADMIN_BIND=127.0.0.1 PORT=0 ADMIN_PORT=0 "$@" \
                $pin_server $bin/wsdrain >"$log" 2>&1 & ;;
    peer-4k)  $pin_server $bin/peer --port 0 --buffers 4k >"$log" 2>&1 & ;;
    peer*)    $pin_server $bin/peer --port 0 --buffers default >"$log" 2>&1 & ;;
  esac
  pid=$!
  pids+=("$pid")
  # wsdrain logs "listening public=127.0.0.1:PORT admin=127.0.0.1:PORT ..."; the peer prints
  # "listening ADDR".
  for _ in $(seq 1 200); do
    port=$(sed -n 's/.*listening \(public=\)\{0,1\}127.0.0.1:\([0-9]*\).*/\2/p' "$log" | head -1)
    admin=$(sed -n 's/.* admin=127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && return
    sleep 0.05
  done
  echo "$name did not start; log:" >&2; cat "$log" >&2; exit 1
}

stop() { kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
