"""Latency prediction error of a scenario trace written by `adascale-run --scenario`.

For each trace CSV given, prints the median and 90th percentile of |predicted - observed| /
observed per request, over all requests, the contended ones (burners running), the idle ones and
per load level (burner count, "+mem" while a balloon holds memory), twice: with the profiler's online correction (the prediction the loop acted on) and without it
(the catalog latency scaled by the sensed contention only, predicted_uncorrected_ms), both taken
at the time each request began, for the same requests.
With --pooled, one table over the requests of all the files instead of one per file.
usage: python3 scripts/bench/prediction_error.py [--pooled] runs/scenarios/*-adaptive.csv
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


def level(row):
    return row["burners"] + ("+mem" if float(row["balloon_mib"]) > 0 else "")


def report(title, rows):
    def errors(column, pick):
        return [abs(float(r[column]) - float(r["observed_ms"])) / float(r["observed_ms"])
                for r in rows if r.get(column) and pick(r)]
    print(title)
    levels = sorted({level(r) for r in rows})
    for column, label in (("predicted_ms", "corrected"),
                          ("predicted_uncorrected_ms", "uncorrected")):
        print(f" {label}")
        print("  all       ", quantiles(errors(column, lambda r: True)))
        print("  contended ", quantiles(errors(column, lambda r: int(r["burners"]) > 0)))
        print("  idle      ", quantiles(errors(column, lambda r: int(r["burners"]) == 0)))
        for name in levels:
            print(f"  level {name:<4}", quantiles(errors(column, lambda r: level(r) == name)))


def main(args):
    pooled = "--pooled" in args
    paths = [a for a in args if a != "--pooled"]
    everything = []
    for path in paths:
        with open(path) as f:
            rows = list(csv.DictReader(f))
        if pooled:
            everything += rows
        else:
            report(path, rows)
    if pooled:
        report(f"{len(paths)} traces, pooled", everything)


if __name__ == "__main__":
    main(sys.argv[1:])
