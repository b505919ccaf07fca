#!/usr/bin/env bash
# Issue 23, one-off: per-step.sh (every 1 s, 10,000 idle WebSockets) with loopback's receive
# processing steered to core 1, the client's (RPS, /sys/class/net/lo/queues/rx-0/rps_cpus = 2), so
# the client's receive path and wake-ups are no longer charged to the server's core, as on a real
# network; also the ACKs' (the one device serves both directions). Restores the mask at exit.
# netdev_max_backlog is raised to 20,000 for the run (restored at exit): at its default, 1,000,
# the steered packets overflowed core 1's backlog (250,000 drops in one run of 5 rounds), and TCP
# resent them. Prints the softnet drops of both cores before and after. At any exit (the end, a
# failure, Ctrl-C, TERM, HUP) it stops per-step.sh first, so no round runs unsteered, then restores
# both settings. Needs root.
#   UWS_BIN=/path/to/echo bash benches/experiments/issue23/per-step/rps-lo.sh
set -eu
mask=/sys/class/net/lo/queues/rx-0/rps_cpus
backlog=/proc/sys/net/core/netdev_max_backlog
if [ ! -w "$mask" ] || [ ! -w "$backlog" ]; then
  echo "rps-lo.sh: cannot write $mask and $backlog (run it as root)" >&2
  exit 1
fi
orig=$(cat "$mask")
orig_backlog=$(cat "$backlog")
run=""
# restore: stops per-step.sh if it still runs (its own exit stops its servers), then puts both
# settings back, each whether or not the other could be (a failing command would end a trap
# under set -e); a second Ctrl-C does not cut it short.
restore() {
  trap '' INT TERM HUP
  if [ -n "$run" ]; then
    kill -TERM "$run" 2>/dev/null || true
    wait "$run" 2>/dev/null || true
  fi
  echo "$orig" >"$mask" || echo "rps-lo.sh: could not restore $mask to $orig" >&2
  echo "$orig_backlog" >"$backlog" || echo "rps-lo.sh: could not restore $backlog to $orig_backlog" >&2
}
trap restore EXIT
# per-step.sh runs in the background, waited on: killed while a foreground per-step.sh ran, this
# script would restore the settings and leave it running its rounds unsteered. A trapped signal
# ends the wait at once, and exit runs restore.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
echo 2 >"$mask"
echo 20000 >"$backlog"
drops() { python3 -c 'import sys; print("  ".join(f"cpu{i} drops {int(l.split()[1], 16)}" for i, l in enumerate(open(sys.argv[1]))))' /proc/net/softnet_stat; }
echo "rps_cpus $(cat "$mask"), netdev_max_backlog $(cat "$backlog")"
echo "before: $(drops)"
INTERVAL_MS=1000 ROUNDS="${ROUNDS:-3}" SERVERS="${SERVERS:-wsdrain uws uws-spread}" \
  bash "$(dirname "$0")/per-step.sh" &
run=$!
status=0
wait "$run" || status=$?
run=""
[ "$status" = 0 ] || exit "$status"
echo "after:  $(drops)"
