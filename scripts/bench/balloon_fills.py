"""How much of a policy's violations fall while a memory balloon is being filled.

A balloon (scenario event balloon_alloc) commits its memory by writing every page, which is CPU
work: under burners it took the balloon process 0.4 s (median) to 2 s on the 2-core host, a load
the scenario does not state. The calibration pass of the hindsight and oracle policies measures
a level only once its balloon is full, so it never sees that load.

For each trace CSV given (OUT/traces/*-POLICY.csv), a fill begins at a row whose balloon_mib
grows and ends at the first row whose mem_available_mib has dropped by half the growth (the drop
in MemAvailable is 75-95% of the balloon; in traces of replayers that waited for a balloon to be
full, the first sample after the event comes once it is). Prints the fill times and the share
of requests over the latency budget during fills, after them under the same load, in other
contended rows and at idle.
usage: python3 scripts/bench/balloon_fills.py OUT/traces/random-*-oracle.csv
"""
import csv
import statistics
import sys


def main(paths):
    fills = []
    counts = {k: [0, 0] for k in ("during fills", "after fills", "other contended", "idle")}
    for path in paths:
        with open(path) as f:
            rows = list(csv.DictReader(f))
        filling_until = None  # mem_available_mib at which the current fill counts as done
        fill_start = 0.0
        previous_balloon = 0.0
        in_filled_load = False
        for r in rows:
            balloon = float(r["balloon_mib"])
            available = float(r["mem_available_mib"])
            if balloon > previous_balloon:
                filling_until = available - 0.5 * (balloon - previous_balloon)
                fill_start = float(r["time_s"])
                in_filled_load = True
            elif balloon < previous_balloon or r["burners"] == "0" and balloon == 0:
                in_filled_load = False
                filling_until = None
            if filling_until is not None and available <= filling_until:
                fills.append(float(r["time_s"]) - fill_start)
                filling_until = None
            if filling_until is not None:
                key = "during fills"
            elif in_filled_load:
                key = "after fills"
            elif r["burners"] != "0" or balloon > 0:
                key = "other contended"
            else:
                key = "idle"
            counts[key][0] += 1
            counts[key][1] += int(r["violation"])
            previous_balloon = balloon
    print(f"{len(paths)} traces, {len(fills)} fills", end="")
    if fills:
        print(f": median {statistics.median(fills):.2f} s, longest {max(fills):.2f} s")
    else:
        print()
    total = sum(v for _, v in counts.values())
    for key, (n, v) in counts.items():
        share = 100 * v / n if n else 0
        part = 100 * v / total if total else 0
        print(f"  {key:16s} {n:6d} requests, {v:4d} over budget ({share:5.1f}%), "
              f"{part:5.1f}% of all over budget")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
