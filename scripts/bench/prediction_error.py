"""Latency prediction error of a scenario trace written by `adascale-run --scenario`.

For each trace CSV given, prints the median and 90th percentile of |predicted - observed| /
observed per request, over all requests, the contended ones (burners running) and the idle ones,
twice: with the profiler's online correction (the prediction the loop acted on) and without it
(the catalog latency scaled by the sensed contention only, predicted_uncorrected_ms), both taken
at the time each request began, for the same requests.
usage: python3 scripts/bench/prediction_error.py runs/scenarios/*-adaptive.csv
"""
import csv
import sys


def quantiles(errors):
    if not errors:
        return "-"
    errors = sorted(errors)
    median = errors[len(errors) // 2]
    p90 = errors[int(0.9 * (len(errors) - 1))]
    return f"{len(errors)} requests: median {100 * median:.1f}%, p90 {100 * p90:.1f}%"


def main(paths):
    for path in paths:
        with open(path) as f:
            rows = list(csv.DictReader(f))
        def errors(column, pick):
            return [abs(float(r[column]) - float(r["observed_ms"])) / float(r["observed_ms"])
                    for r in rows if r.get(column) and pick(r)]
        print(path)
        for column, label in (("predicted_ms", "corrected"),
                              ("predicted_uncorrected_ms", "uncorrected")):
            print(f" {label}")
            print("  all       ", quantiles(errors(column, lambda r: True)))
            print("  contended ", quantiles(errors(column, lambda r: int(r["burners"]) > 0)))
            print("  idle      ", quantiles(errors(column, lambda r: int(r["burners"]) == 0)))


if __name__ == "__main__":
    main(sys.argv[1:])
