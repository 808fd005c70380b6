#!/usr/bin/env bash
# Two adaptive apps on one device over seeded random scenarios: for seeds 1..N, generates the
# scenario (adascale-run --generate-scenario, sized for the first bundle) and replays it with two
# processes side by side (--second-bundle), each with its own bundle and adaptation loop, under
# the adaptive and oracle policies (docs/scenarios.md#two-apps). Prints, per scenario and app and
# on average, the adaptive policy's violations, its accuracy gap to its own oracle and its
# switches per contention step.
#
#   scripts/two_app_scenarios.sh BUNDLE N [BUNDLE2]
#
# BUNDLE2 defaults to BUNDLE (a second copy, loaded by the second process). KEYS: [adaptation]
# settings for both apps' loops, KEY:VALUE,KEY:VALUE (e.g. KEYS=probe_delay_ms:0; default none).
# ALONE=1: after each two-app replay, the first app replays the same scenario on its own (rows
# "alone"), so that two apps are compared with one on the same seeds, side by side. ALONE=both:
# also on its own with one more CPU burner from the start (rows "alone+1"): the other app's
# inference keeps a core busy too, so one app with a burner more sees the load that each of two
# apps sees, without another loop that reacts to it.
# RUN, IDX, LABELS, OUT and FIRST_SEED as for scripts/random_scenarios.sh.
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 3 ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 BUNDLE N [BUNDLE2]" >&2
  exit 2
fi
bundle=$1
count=$2
second=${3:-$1}
cd "$(dirname "$0")/.."
# shellcheck source=scripts/scenario_env.sh
source scripts/scenario_env.sh two-app-scenarios

# table_rows SEED SECONDS NAME... < replay output: one row per adaptive app of the output, named
# in order: seed, app, violations %, gap to oracle (pt), switches per step, seconds. EXTRA_STEPS:
# steps of the output that the plain timeline does not have (the burner at 0 s of "alone+1"),
# left out of the switches per step so that every row divides by the same steps.
table_rows() {
  local seed=$1 seconds=$2
  shift 2
  awk -v seed="$seed" -v seconds="$seconds" -v names="$*" -v extra="${EXTRA_STEPS:-0}" '
    $1 == "adaptive" && $2 == "(adaptive)" { ++app; viol[app] = $5; gap[app] = $NF
                                             switches[app] = $8; sub(/%/, "", viol[app]) }
    /^switches per contention step/ {
      steps = $5; sub(/^\(/, "", steps)
      for (i = 1; i <= NF; ++i) if ($i == "adaptive") per[app] = $(i + 1)
      if (extra > 0) per[app] = steps > extra ? sprintf("%.2f", switches[app] / (steps - extra)) : "-"
    }
    END { n = split(names, name, " ")
          for (a = 1; a <= n; ++a)
            printf "%s\t%s\t%s\t%s\t%s\t%s\n", seed, name[a], viol[a], gap[a], per[a], seconds }'
}

for ((seed = first; seed < first + count; ++seed)); do
  scenario=$out/random-$seed.ini
  generate_scenario "$seed" "$out/random-$seed-generated.ini" "$bundle"
  with_settings "${KEYS:-}" "random-$seed" "$out/random-$seed-generated.ini" "$scenario"
  start=$(date +%s)
  "$run" --bundle "$bundle" --second-bundle "$second" --scenario "$scenario" --idx "$idx" \
    --labels "$labels" --policy adaptive,oracle --trace-out "$out/traces" \
    >"$out/random-$seed.txt" 2>"$out/random-$seed.log"
  seconds=$(($(date +%s) - start))
  grep -E '^(budget|scenario |policy |adaptive |oracle |switches per|second app)' \
    "$out/random-$seed.txt"
  echo "replay took ${seconds} s (both calibrations and two policies)"
  # one adaptive row and one switches line per app, the first app's first
  table_rows "$seed" "$seconds" 1 2 <"$out/random-$seed.txt" >>"$results"
  case ${ALONE:-0} in 1) alone=(alone) ;; both) alone=(alone alone+1) ;; *) alone=() ;; esac
  for name in "${alone[@]}"; do
    file=$out/random-$seed-$name
    if [ "$name" = alone ]; then
      cp "$scenario" "$file.ini"
    else  # the burner starts at 0 s, before the timeline's own events of that time
      awk '{ print } /^\[timeline\]/ { print "0 = burners_start 1" }' "$scenario" >"$file.ini"
    fi
    start=$(date +%s)
    "$run" --bundle "$bundle" --scenario "$file.ini" --idx "$idx" --labels "$labels" \
      --policy adaptive,oracle --trace-out "$out/$name-traces" >"$file.txt" 2>"$file.log"
    seconds=$(($(date +%s) - start))
    grep -E '^(adaptive |switches per)' "$file.txt" | sed "s/^/$name: /"
    extra=0
    [ "$name" = alone ] || extra=1
    EXTRA_STEPS=$extra table_rows "$seed" "$seconds" "$name" <"$file.txt" >>"$results"
  done
done

echo
echo "adaptive policy per scenario and app:"
awk -F'\t' '
  BEGIN { printf "%6s %4s %14s %20s %20s %10s\n", "seed", "app", "violations %",
          "gap to oracle (pt)", "switches per step", "replay s" }
  {
    printf "%6s %4s %14s %20s %20s %10s\n", $1, $2, $3, $4, $5, $6
    if (!($2 in n)) order[++apps] = $2
    v[$2] += $3; g[$2] += $4; n[$2] += 1
    if ($5 != "-" && $5 != "") { s[$2] += $5; m[$2] += 1 }
    if ($3 > worstv[$2]) worstv[$2] = $3
    if ($4 > worstg[$2]) worstg[$2] = $4
  }
  END {
    for (i = 1; i <= apps; ++i) {
      a = order[i]
      per[a] = m[a] ? s[a] / m[a] : 0
      printf "%6s %4s %14.2f %20.2f %20s    (worst %.2f%%, %.2f pt)\n", "mean", a, v[a] / n[a],
             g[a] / n[a], m[a] ? sprintf("%.2f", per[a]) : "-", worstv[a], worstg[a]
    }
    # side by side on the same seeds: the switches per step of each app against the app alone
    for (i = 1; i <= apps; ++i)
      for (j = 1; j <= apps; ++j)
        if (order[i] ~ /^[0-9]+$/ && order[j] ~ /^alone/ && per[order[j]] > 0)
          printf "app %s switches per step / %s: %.2f\n", order[i], order[j],
                 per[order[i]] / per[order[j]]
  }' "$results"

