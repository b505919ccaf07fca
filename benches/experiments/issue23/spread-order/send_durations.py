"""Issue 23, one-off: each sendto's duration by its place in the server's step.

Reads NAME.txt (perf script -F time,event of sys_enter/sys_exit_sendto) for each NAME given, in
the current folder; a gap of over 10 ms between sends starts a new step (the first and last
steps, cut by the window, are left out). Prints per server the sends' mean and median, then the
same by place in the step: the first 10, the next 90, the next 900, the rest.
"""

import statistics
import sys

PLACES = [(0, 10, "0-9"), (10, 100, "10-99"), (100, 1000, "100-999"), (1000, None, "1000+")]


def send_durations(path):
    """(time, µs) of each sendto: an enter followed by its exit."""
    events = []
    with open(path) as lines:
        for line in lines:
            time, event = line.split()[:2]
            events.append((float(time.rstrip(":")), "enter" in event))
    return [
        (t0, (t1 - t0) * 1e6)
        for (t0, enter0), (t1, enter1) in zip(events, events[1:])
        if enter0 and not enter1
    ]


def steps_of(sends):
    """The sends grouped into steps, the cut first and last left out."""
    steps, step, last = [], [], None
    for time, micros in sends:
        if last is not None and time - last > 0.010:
            steps.append(step)
            step = []
        step.append(micros)
        last = time
    steps.append(step)
    return steps[1:-1]


def main():
    for name in sys.argv[1:]:
        steps = steps_of(send_durations(f"{name}.txt"))
        every = [d for step in steps for d in step]
        print(
            f"{name}: {len(steps)} steps, {len(every)} sends, "
            f"mean {statistics.mean(every):.2f} us, median {statistics.median(every):.2f}"
        )
        for start, end, label in PLACES:
            at = [d for step in steps for d in step[start:end]]
            if at:
                p90 = sorted(at)[int(len(at) * 0.9)]
                print(
                    f"   sends {label:8}: n {len(at):6} mean {statistics.mean(at):6.2f} "
                    f"median {statistics.median(at):6.2f} p90 {p90:6.2f}"
                )


if __name__ == "__main__":
    main()
