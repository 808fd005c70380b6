"""Time back to the oracle's branch after a load ends, from the traces of a random-scenario run.

For every `burners_stop` event of each scenario file given (OUT/random-SEED.ini, written by
scripts/random_scenarios.sh), the time from the event to the first request of the adaptive
trace (OUT/traces/random-SEED-adaptive.csv) that runs the branch the oracle trace runs 50 ms
after the event; 'never' when the adaptive policy did not run it before the scenario ended.
usage: python3 scripts/bench/time_back.py OUT/random-*.ini
"""
import csv
import os
import re
import statistics
import sys


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def main(paths):
    times, never = [], 0
    for ini in paths:
        folder, name = os.path.split(ini)
        stem = name[:-len(".ini")]
        ends = sorted({float(m.group(1)) for line in open(ini)
                       for m in [re.match(r"^([\d.]+) = burners_stop", line)] if m})
        adaptive = rows(os.path.join(folder, "traces", stem + "-adaptive.csv"))
        oracle = rows(os.path.join(folder, "traces", stem + "-oracle.csv"))
        found = []
        for end in ends:
            after = [r["branch"] for r in oracle if float(r["time_s"]) >= end + 0.05]
            if not after:
                continue
            back = [float(r["time_s"]) - end for r in adaptive
                    if float(r["time_s"]) >= end and r["branch"] == after[0]]
            if back:
                times.append(back[0])
                found.append(f"{back[0]:.2f} s")
            else:
                never += 1
                found.append("never")
        print(f"{stem}: {', '.join(found) if found else 'no load ends'}")
    if times:
        ordered = sorted(times)
        print(f"load ends: {len(times) + never}; back on the oracle's branch: median "
              f"{statistics.median(ordered):.2f} s, p90 {ordered[int(0.9 * (len(ordered) - 1))]:.2f} s, "
              f"worst {ordered[-1]:.2f} s; never: {never}")


if __name__ == "__main__":
    main(sys.argv[1:])
