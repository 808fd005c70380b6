"""How long a request's latency stays in one phase under load, and what that means for prediction.

Under contention on a small machine an inference either has a core to itself or shares one, so a
request takes about its idle time or about twice it. For each load level (burner count, "+mem"
while a balloon holds memory) of the adaptive traces given (OUT/traces/random-*-adaptive.csv),
prints:
  slow     the share of requests over 1.5x the branch's median latency at idle
  same     the chance that a request is in the same phase (slow or not) as the one before it
           on the same branch
  trace    median / p90 of |predicted - observed| / observed of the trace's predicted_ms, the
           prediction the loop made at its last period
  last     the same for a forecast that knows every request up to the one before: that
           request's observed / predicted ratio applied to this request's prediction
The gap between the two is what a per-request forecast could gain; the loop decides once a
period, and a phase lasts about as long as a few periods, so it has no such forecast to act on.
usage: python3 scripts/bench/latency_phases.py OUT/traces/random-*-adaptive.csv
"""
import collections
import csv
import statistics
import sys

from prediction_error import level


def quantiles(values):
    values = sorted(values)
    return values[len(values) // 2], values[int(0.9 * (len(values) - 1))]


def main(paths):
    traces = []
    for path in paths:
        with open(path) as f:
            traces.append(list(csv.DictReader(f)))
    idle = collections.defaultdict(list)
    for trace in traces:
        for r in trace:
            if level(r) == "0":
                idle[r["branch"]].append(float(r["observed_ms"]))
    median = {b: statistics.median(v) for b, v in idle.items()}
    slow, same, trace_err, last_err = (collections.defaultdict(list) for _ in range(4))
    for trace in traces:
        previous = None
        for r in trace:
            name, observed = level(r), float(r["observed_ms"])
            predicted = float(r["predicted_ms"])
            if name == "0" or r["branch"] not in median or not predicted > 0:
                previous = None
                continue
            is_slow = observed > 1.5 * median[r["branch"]]
            slow[name].append(is_slow)
            trace_err[name].append(abs(predicted - observed) / observed)
            if previous and previous[0] == (name, r["branch"]):
                same[name].append(is_slow == previous[1])
                last_err[name].append(abs(predicted * previous[2] - observed) / observed)
            previous = ((name, r["branch"]), is_slow, observed / predicted)
    print(f"{'level':<6} {'requests':>8} {'slow':>6} {'same':>6} {'trace':>13} {'last':>13}")
    for name in sorted(slow):
        if not last_err[name]:
            continue
        t, l = quantiles(trace_err[name]), quantiles(last_err[name])
        print(f"{name:<6} {len(slow[name]):>8} {statistics.mean(slow[name]):>6.2f} "
              f"{statistics.mean(same[name]):>6.2f} {100 * t[0]:>5.1f}%/{100 * t[1]:>5.1f}% "
              f"{100 * l[0]:>5.1f}%/{100 * l[1]:>5.1f}%")


if __name__ == "__main__":
    main(sys.argv[1:])
