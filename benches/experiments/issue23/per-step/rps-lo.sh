#!/usr/bin/env bash
# Issue 23, one-off: per-step.sh (every 1 s, 10,000 idle WebSockets) with loopback's receive
# processing steered to core 1, the client's (RPS, /sys/class/net/lo/queues/rx-0/rps_cpus = 2), so
# the client's receive path and wake-ups are no longer charged to the server's core, as on a real
# network; also the ACKs' (the one device serves both directions). Restores the mask at exit.
# netdev_max_backlog is raised to 20,000 for the run (restored at exit): at its default, 1,000,
# the steered packets overflowed core 1's backlog (250,000 drops in one run of 5 rounds), and TCP
# resent them. Prints the softnet drops of both cores before and after.
#   UWS_BIN=/path/to/echo bash benches/experiments/issue23/per-step/rps-lo.sh
set -eu
mask=/sys/class/net/lo/queues/rx-0/rps_cpus
backlog=/proc/sys/net/core/netdev_max_backlog
orig=$(cat "$mask")
orig_backlog=$(cat "$backlog")
trap 'echo "$orig" >"$mask"; echo "$orig_backlog" >"$backlog"' EXIT
echo 2 >"$mask"
echo 20000 >"$backlog"
drops() { python3 -c 'import sys; print("  ".join(f"cpu{i} drops {int(l.split()[1], 16)}" for i, l in enumerate(open(sys.argv[1]))))' /proc/net/softnet_stat; }
echo "rps_cpus $(cat "$mask"), netdev_max_backlog $(cat /proc/sys/net/core/netdev_max_backlog)"
echo "before: $(drops)"
INTERVAL_MS=1000 ROUNDS="${ROUNDS:-3}" SERVERS="${SERVERS:-wsdrain uws uws-spread}" \
  bash "$(dirname "$0")/per-step.sh"
echo "after:  $(drops)"
