#!/usr/bin/env python3
"""Int8 against fp32 per branch of an exported bundle, from runtime_bench's JSON output.

  ADASCALE_BENCH_BUNDLE=model.bundle build/bench/runtime_bench --benchmark_repetitions=5 \
      --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true \
      --benchmark_min_time=0.1 --benchmark_out=r.json --benchmark_out_format=json
  scripts/bench/int8_table.py r.json [more.json ...]

Prints one markdown row per fp32 branch that has an int8 twin: medians in microseconds of the
fp32 branch (xnnpack), its int8 twin on xnnpack (architecture kernels on) and on xnnpack-plain
(XNNPACK alone), and the two int8 / fp32 ratios. With several files, the median over files.
"""
import json
import statistics
import sys


def load(paths):
    times = {}
    for path in paths:
        with open(path) as f:
            for b in json.load(f)["benchmarks"]:
                if b.get("aggregate_name") != "median" or not b["name"].startswith("bundle/"):
                    continue
                _, kind, rest = b["name"].split("/", 2)
                name = rest[: -len("_median")]
                times.setdefault((kind, name), []).append(b["real_time"])
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: int8_table.py RESULT.json [...]")
    t = load(sys.argv[1:])
    print("| branch | fp32 | int8 | int8 XNNPACK alone | int8 / fp32 | XNNPACK alone / fp32 |")
    print("|---|---|---|---|---|---|")
    ratios, plain_ratios = [], []
    for (kind, name), fp32 in t.items():
        if kind != "xnnpack" or "int8" in name:
            continue
        twin = name + ">int8"
        if ("xnnpack", twin) not in t:
            continue
        int8, plain = t[("xnnpack", twin)], t.get(("xnnpack-plain", twin))
        ratios.append(int8 / fp32)
        row = f"| {name} | {fp32:.1f} | {int8:.1f} | "
        if plain is None:
            row += "- | {:.2f} | - |".format(int8 / fp32)
        else:
            plain_ratios.append(plain / fp32)
            row += f"{plain:.1f} | {int8 / fp32:.2f} | {plain / fp32:.2f} |"
        print(row)
    if ratios:
        print(f"\nint8 / fp32: {min(ratios):.2f}-{max(ratios):.2f} "
              f"(median {statistics.median(ratios):.2f}) over {len(ratios)} branches; "
              f"faster than fp32 in {sum(r < 1 for r in ratios)}")
    if plain_ratios:
        print(f"XNNPACK alone: {min(plain_ratios):.2f}-{max(plain_ratios):.2f} "
              f"(median {statistics.median(plain_ratios):.2f}); "
              f"faster than fp32 in {sum(r < 1 for r in plain_ratios)}")


if __name__ == "__main__":
    main()
