#!/usr/bin/env bash
# Issue 23, one-off: the kernel's tracepoints hit while the server is the current task, per
# 1,000 alive messages (10,000 idle WebSockets, an alive message every 1 s, 8 s of perf's exact
# counts, `perf stat -p`), one column per server: where the spread's extra cost is extra work
# (more events per message), it shows here; where it is the same work done slower, it does not.
#   UWS_BIN=/path/to/echo SERVERS="uws uws-spread wsdrain" \
#     bash benches/experiments/issue23/per-step/events.sh
set -eu
cd "$(dirname "$0")/../../../.."
logdir=$(mktemp -d)
# shellcheck source=benches/servers.sh
. benches/servers.sh
events=${EVENTS:-syscalls:sys_enter_sendto,syscalls:sys_enter_epoll_wait,sched:sched_waking,sched:sched_wake_idle_without_ipi,sched:sched_switch,kmem:mm_page_alloc,kmem:mm_page_free,kmem:mm_page_free_batched,kmem:mm_page_pcpu_drain,kmem:kmem_cache_alloc,kmem:kmem_cache_free,kmem:kmalloc,kmem:kfree,skb:consume_skb,skb:kfree_skb,net:netif_rx,net:net_dev_xmit,sock:sk_data_ready,tcp:tcp_probe,tcp:tcp_rcv_space_adjust,timer:timer_start,timer:timer_cancel,timer:timer_expire_entry,timer:hrtimer_start,timer:hrtimer_cancel,irq:softirq_raise,irq:softirq_entry,rcu:rcu_utilization,percpu:percpu_alloc_percpu}
messages=80000 # 8 s of 10,000 a second
read -ra servers <<<"${SERVERS:-uws uws-spread wsdrain}"
for s in "${servers[@]}"; do
  start "$s" ALIVE_INTERVAL=1s
  fanout_start --connections 10000 --seconds 16 --warmup 2 --label "$s" --csv /dev/null \
    >"$logdir/loadgen.out" 2>&1
  sleep 5 # pacing: the connections are open and the alive messages flow
  perf stat -x, -e "$events" -p "$pid" -- sleep 8 2>"$logdir/$s.csv" >/dev/null
  wait "$lg"
  stop
done
python3 - "$messages" "$logdir" "${servers[@]}" <<'PY'
import csv, sys
messages, logdir, servers = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
counts = {}
for s in servers:
    for row in csv.reader(open(f"{logdir}/{s}.csv")):
        if len(row) > 2 and row[0].isdigit():
            counts.setdefault(row[2], {})[s] = int(row[0]) * 1000 / messages
print(f"{'per 1,000 alive messages':40}" + "".join(f"{s:>12}" for s in servers))
for event, by in counts.items():
    print(f"{event:40}" + "".join(f"{by.get(s, 0):12.1f}" for s in servers))
PY
