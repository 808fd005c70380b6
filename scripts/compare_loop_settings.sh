#!/usr/bin/env bash
# The adaptive loop with different [adaptation] settings on the same seeded random scenarios,
# interleaved (for each seed, every setting back to back), so that a noisy host affects them
# alike. For each seed it generates the scenario (adascale-run --generate-scenario), replays it
# once per setting with the adaptive policy (the first setting also with the oracle, whose
# accuracy every setting's gap is taken against), and prints per seed and on average each
# setting's violations, accuracy, gap to the oracle and switches per contention step, then the
# latency prediction error per load level of each setting's requests, pooled over the seeds.
#
#   scripts/compare_loop_settings.sh BUNDLE SEEDS NAME=KEY:VALUE,KEY:VALUE ...
#
# SEEDS: a comma list (e.g. 1,2,3); a setting with no keys after '=' keeps the generated
# scenario's. The key threads is not a scenario key: it runs adascale-run --threads VALUE (the
# loop then chooses the threads with the branch where the catalog has latency_by_threads), and
# the requests on each thread count per load level are printed at the end. Example: scripts/compare_loop_settings.sh runs/demo/model.bundle 1,2,3 \
#   new= old=dwell_doublings:0
# ORACLE=each: every setting also runs the oracle, and its gap is taken against its own (for
# settings that change the oracle, e.g. scenario.calibration_interleaved:false); default: the
# first setting's oracle for all. The oracle's violations are printed as well.
# RUN, IDX, LABELS and OUT as for scripts/random_scenarios.sh.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 BUNDLE SEEDS NAME=KEY:VALUE,... NAME=..." >&2
  exit 2
fi
bundle=$1
IFS=, read -r -a seeds <<<"$2"
shift 2
cd "$(dirname "$0")/.."
# shellcheck source=scripts/scenario_env.sh
source scripts/scenario_env.sh loop-settings

for seed in "${seeds[@]}"; do
  [[ $seed =~ ^[0-9]+$ ]] || { echo "bad seed '$seed'" >&2; exit 2; }
  base=$out/random-$seed.ini
  "$run" --bundle "$bundle" --generate-scenario "$seed" --out "$base" >/dev/null
  leading=1
  oracle=""
  for setting in "$@"; do
    name=${setting%%=*}
    keys=${setting#*=}
    [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || { echo "bad setting name '$name'" >&2; exit 2; }
    scenario=$out/random-$seed-$name.ini
    threads=1
    if [[ ,$keys, =~ ,threads:([0-9]+), ]]; then threads=${BASH_REMATCH[1]}; fi
    keys=$(echo ",$keys," | sed -E 's/,threads:[0-9]+,/,/; s/^,//; s/,$//')
    with_settings "$keys" "random-$seed-$name" "$base" "$scenario"
    policy=adaptive
    if [ $leading = 1 ] || [ "${ORACLE:-first}" = each ]; then policy=adaptive,oracle; fi
    "$run" --bundle "$bundle" --scenario "$scenario" --idx "$idx" --labels "$labels" \
      --policy "$policy" --threads "$threads" --trace-out "$out/traces" \
      >"$out/random-$seed-$name.txt" \
      2>"$out/random-$seed-$name.log"
    if [ "$policy" = adaptive,oracle ]; then
      oracle=$(awk '$1 == "oracle" && $2 == "(segments)" { a = $7; sub(/%/, "", a); print a }' \
        "$out/random-$seed-$name.txt")
      oracle_viol=$(awk '$1 == "oracle" && $2 == "(segments)" { v = $5; sub(/%/, "", v); print v }' \
        "$out/random-$seed-$name.txt")
    fi
    awk -v seed="$seed" -v name="$name" -v oracle="$oracle" -v oracle_viol="$oracle_viol" '
      $1 == "adaptive" && $2 == "(adaptive)" { viol = $5; acc = $7; sub(/%/, "", viol)
                                               sub(/%/, "", acc) }
      /^switches per contention step/ {
        for (i = 1; i <= NF; ++i) if ($i == "adaptive") per = $(i + 1)
      }
      END { printf "%s\t%s\t%s\t%s\t%.2f\t%s\t%s\n", seed, name, viol, acc, oracle - acc, per,
                   oracle_viol }' \
      "$out/random-$seed-$name.txt" >>"$results"
    tail -n 1 "$results"
    leading=0
  done
done

echo
echo "per setting, mean over seeds ${seeds[*]}:"
awk -F'\t' '
  BEGIN { printf "%-12s %14s %12s %20s %20s %20s\n", "setting", "violations %", "accuracy %",
          "gap to oracle (pt)", "switches per step", "oracle violations %" }
  { if (!($2 in n)) order[++k] = $2
    v[$2] += $3; a[$2] += $4; g[$2] += $5; n[$2] += 1; ov[$2] += $7
    if ($6 != "-" && $6 != "") { s[$2] += $6; m[$2] += 1 } }
  END { for (i = 1; i <= k; ++i) { x = order[i]
          printf "%-12s %14.2f %12.2f %20.2f %20s %20.2f\n", x, v[x] / n[x], a[x] / n[x],
                 g[x] / n[x], m[x] ? sprintf("%.2f", s[x] / m[x]) : "-", ov[x] / n[x] } }' \
  "$results"
for setting in "$@"; do
  name=${setting%%=*}
  echo
  echo "prediction error, setting $name:"
  python3 scripts/bench/prediction_error.py --pooled "$out"/traces/random-*-"$name"-adaptive.csv
  python3 scripts/bench/thread_use.py "$out"/traces/random-*-"$name"-adaptive.csv
done
