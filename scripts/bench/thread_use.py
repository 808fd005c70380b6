"""Which thread counts the adaptive policy ran its requests on, per load level, pooled over the
scenario traces given (written by `adascale-run --scenario --threads N`): the count of requests
on each thread count while 0, 1, 2, ... burners ran, and their share of violations. On a
machine with C cores, a request on more threads than C minus the burners waited for a core: the
loop should not choose one (a few right at a load step are requests that started before the loop
saw it).
usage: python3 scripts/bench/thread_use.py runs/scenarios/*-adaptive.csv
"""
import collections
import csv
import sys


def main(paths):
    if not paths:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    counts = collections.Counter()
    violations = collections.Counter()
    for path in paths:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if "threads" not in row:
                    print(f"{path}: no threads column (an older trace)", file=sys.stderr)
                    return 1
                key = (int(row["burners"]), int(row["threads"]))
                counts[key] += 1
                violations[key] += row["violation"] == "1"
    print("requests per load level (burners) and thread count:")
    for burners in sorted({b for b, _ in counts}):
        cells = []
        total = sum(n for (b, _), n in counts.items() if b == burners)
        for threads in sorted(t for b, t in counts if b == burners):
            n = counts[(burners, threads)]
            cells.append(f"{threads} thread{'s' if threads > 1 else ''}: {n} "
                         f"({100 * n / total:.1f}%, {100 * violations[(burners, threads)] / n:.2f}%"
                         " over budget)")
        print(f"  {burners} burners: " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
