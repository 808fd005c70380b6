#!/usr/bin/env bash
# Seeded random contention scenarios against a bundle: generates N scenarios (seeds 1..N,
# adascale-run --generate-scenario), replays each with the adaptive, hindsight and oracle policies
# (docs/scenarios.md), prints each summary table and then, per scenario and on average, the
# adaptive policy's violations, its accuracy gap to the oracle and its switches per contention
# step; then the latency prediction error per load level (scripts/bench/prediction_error.py) and
# the time back on the oracle's branch after each load ends (scripts/bench/time_back.py). Each
# replay takes one calibration pass plus three times the scenario's duration.
#
#   scripts/random_scenarios.sh BUNDLE N
#
# RUN: the adascale-run binary (default build-rt/tools/adascale-run/adascale-run, else
# build/...); IDX and LABELS: the labelled test split (default Fashion-MNIST t10k); OUT: where the
# scenarios, summaries and traces go (default a new temporary folder); FIRST_SEED (default 1).
set -euo pipefail
if [ $# -ne 2 ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 BUNDLE N" >&2
  exit 2
fi
bundle=$1
count=$2
cd "$(dirname "$0")/.."
# shellcheck source=scripts/scenario_env.sh
source scripts/scenario_env.sh random-scenarios

for ((seed = first; seed < first + count; ++seed)); do
  scenario=$out/random-$seed.ini
  generate_scenario "$seed" "$scenario" "$bundle"
  start=$(date +%s)
  "$run" --bundle "$bundle" --scenario "$scenario" --idx "$idx" --labels "$labels" \
    --policy adaptive,hindsight,oracle --trace-out "$out/traces" >"$out/random-$seed.txt" \
    2>"$out/random-$seed.log"
  seconds=$(($(date +%s) - start))
  # the budgets and the summary table as adascale-run printed them
  grep -E '^(budget|t=|scenario |policy |adaptive |hindsight |oracle |switches per)' \
    "$out/random-$seed.txt"
  echo "replay took ${seconds} s (calibration and three policies)"
  # adaptive row: violations is field 5, the gap to the oracle the last one
  awk -v seed="$seed" -v seconds="$seconds" '
    $1 == "adaptive" && $2 == "(adaptive)" { viol = $5; gap = $NF; sub(/%/, "", viol) }
    /^switches per contention step/ {
      for (i = 1; i <= NF; ++i) if ($i == "adaptive") per = $(i + 1)
    }
    END { printf "%s\t%s\t%s\t%s\t%s\n", seed, viol, gap, per, seconds }' \
    "$out/random-$seed.txt" >>"$results"
done

echo
echo "adaptive policy per scenario:"
awk -F'\t' '
  BEGIN { printf "%6s %14s %20s %24s %10s\n", "seed", "violations %", "gap to oracle (pt)",
          "switches per step", "replay s" }
  {
    printf "%6s %14s %20s %24s %10s\n", $1, $2, $3, $4, $5
    v += $2; g += $3; n += 1; t += $5
    if ($4 != "-") { s += $4; m += 1 }
  }
  END {
    printf "%6s %14.2f %20.2f %24s %10d\n", "mean", v / n, g / n,
           m ? sprintf("%.2f", s / m) : "-", t / n
    printf "total replay time: %d s for %d scenarios\n", t, n
  }' "$results"

echo
echo "latency prediction error of the adaptive policy's requests, all scenarios pooled, per load level:"
python3 scripts/bench/prediction_error.py --pooled "$out"/traces/random-*-adaptive.csv
echo
echo "time back on the oracle's branch after each load ends:"
python3 scripts/bench/time_back.py "$out"/random-*.ini
