"""Where the switches of adaptive scenario traces come from.

For each trace CSV written by `adascale-run --scenario` (e.g. OUT/traces/random-*-adaptive.csv),
counts the contention steps (a row where burners or the balloon grow or the latency budget
tightens) and sorts every switch of branch into:
  descent1 / descent+   the first / a further switch down within 1 s of a step
  ascent1 / ascent+     the first / a further switch up within 1.5 s of a load's end, at idle
  load-up               a switch up while loaded (an improvement or a probe)
  load-down-after-up    a switch down while loaded within 2.5 s of a switch up: a step up that
                        did not hold
  load-down             any other switch down while loaded
  idle-up / idle-down   any other switch at idle
Up and down compare the branches' median observed latency at idle over all the traces given (a
branch never run at idle counts as the largest).
Then the round trips: a switch from A to B and the next one back to A within 1.5 s, with no load
or budget change between them, and how many of them began next to a one-sample rise of the run
queue (a context sample whose procs_running is above both the one before and the one after it,
within two samples of the first switch).
usage: python3 scripts/bench/switch_kinds.py OUT/traces/random-*-adaptive.csv
"""
import collections
import csv
import os
import sys


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def idle_sizes(traces):
    latencies = collections.defaultdict(list)
    for trace in traces:
        for r in trace:
            if r["burners"] == "0" and float(r["balloon_mib"]) == 0:
                latencies[r["branch"]].append(float(r["observed_ms"]))
    return {b: sorted(v)[len(v) // 2] for b, v in latencies.items()}


def classify(trace, size):
    kinds, steps = collections.Counter(), 0
    previous, state = None, None
    last_step = last_end = last_up = -1e9
    loaded, descents, ascents = False, 0, 0
    for r in trace:
        t = float(r["time_s"])
        now = (int(r["burners"]), float(r["balloon_mib"]), float(r["budget_latency_ms"]))
        if state is not None and now != state:
            if now[0] > state[0] or now[1] > state[1] or now[2] < state[2]:
                steps, last_step, descents, loaded = steps + 1, t, 0, True
            elif now[0] < state[0] or now[1] < state[1] or now[2] > state[2]:
                last_end, ascents = t, 0
                loaded = now[0] > 0 or now[1] > 0
        state = now
        branch = r["branch"]
        if previous is not None and branch != previous:
            up = size.get(branch, float("inf")) > size.get(previous, float("inf"))
            if loaded and not up and t - last_step < 1.0:
                kinds["descent1" if descents == 0 else "descent+"] += 1
                descents += 1
            elif not loaded and up and t - last_end < 1.5:
                kinds["ascent1" if ascents == 0 else "ascent+"] += 1
                ascents += 1
            elif loaded and up:
                kinds["load-up"] += 1
                last_up = t
            elif loaded:
                kinds["load-down-after-up" if t - last_up < 2.5 else "load-down"] += 1
            else:
                kinds["idle-up" if up else "idle-down"] += 1
        previous = branch
    return kinds, steps


def round_trips(trace):
    """(round trips, of them next to a one-sample run-queue rise)"""
    # the loop's context samples as the rows carry them: a new sample where the values change
    samples, keys = [], None
    for i, r in enumerate(trace):
        key = (r["procs_running"], r["others_cpu_utilization"], r["cpu_utilization"])
        if key != keys:
            samples.append(i)
            keys = key
    procs = [float(trace[i]["procs_running"] or "nan") for i in samples]
    near_rise = set()  # rows from the sample before a rise to the last row of the one after it
    for j in range(1, len(samples) - 1):
        if procs[j] > procs[j - 1] and procs[j] > procs[j + 1]:
            end = samples[j + 2] if j + 2 < len(samples) else len(trace)
            near_rise.update(range(samples[j - 1], end))
    state = [(r["burners"], r["balloon_mib"], r["budget_latency_ms"]) for r in trace]
    switches = [i for i in range(1, len(trace)) if trace[i]["branch"] != trace[i - 1]["branch"]]
    trips = rises = 0
    n = 0
    while n + 1 < len(switches):  # a switch ends at most one round trip: A-B-A-B is one
        a, b = switches[n], switches[n + 1]
        back = trace[b]["branch"] == trace[a - 1]["branch"]
        quick = float(trace[b]["time_s"]) - float(trace[a]["time_s"]) < 1.5
        if back and quick and len(set(state[a:b + 1])) == 1:
            trips += 1
            rises += a in near_rise
            n += 2
        else:
            n += 1
    return trips, rises


def line(name, kinds, steps):
    n = sum(kinds.values())
    per_step = f"{n / steps:.2f}" if steps else "-"
    detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    return f"{name}: {steps} steps, {n} switches ({per_step} per step): {detail}"


def main(paths):
    traces = [rows(p) for p in paths]
    size = idle_sizes(traces)
    total, total_steps = collections.Counter(), 0
    for path, trace in zip(paths, traces):
        kinds, steps = classify(trace, size)
        print(line(os.path.basename(path), kinds, steps))
        total += kinds
        total_steps += steps
    print(line("all", total, total_steps))
    trips = [round_trips(trace) for trace in traces]
    print(f"round trips: {sum(t for t, _ in trips)}, of them next to a one-sample run-queue rise: "
          f"{sum(r for _, r in trips)}")


if __name__ == "__main__":
    main(sys.argv[1:])
