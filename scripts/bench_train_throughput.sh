#!/usr/bin/env bash
# Training throughput, C++ (bench/train_step_bench) against the same network in Python
# (Debian's python3-torch 1.13), same machine, threads and batch size, run alternately
# ROUNDS times; prints each measurement and the ratio of medians.
# Usage: scripts/bench_train_throughput.sh [config] [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/fmnist_resnet.ini}
threads=${2:-2}
rounds=${3:-3}
build=${BUILD_DIR:-build}
scripts/build.sh train_step_bench >/dev/null
cpp=() py=()
for r in $(seq "$rounds"); do
  c=$("$build/bench/train_step_bench" --config "$config" --threads "$threads" \
        --benchmark_filter=nchw:0 --benchmark_format=json 2>/dev/null |
      /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["benchmarks"][0]["items_per_second"])')
  p=$(/usr/bin/python3 scripts/bench/train_throughput.py --config "$config" --threads "$threads" |
      awk '{print $3}')
  printf 'round %d: C++ %.0f images/s, Python %.0f images/s\n' "$r" "$c" "$p"
  cpp+=("$c"); py+=("$p")
done
/usr/bin/python3 - "$config" "$threads" "${cpp[*]}" "${py[*]}" <<'PY'
import statistics, sys
config, threads, cpp, py = sys.argv[1], sys.argv[2], list(map(float, sys.argv[3].split())), list(map(float, sys.argv[4].split()))
c, p = statistics.median(cpp), statistics.median(py)
print(f"{config}, {threads} threads: C++ median {c:.0f} images/s, Python median {p:.0f} images/s, ratio C++/Python {c/p:.2f}x")
PY
