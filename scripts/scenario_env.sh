# Sourced by the random-scenario scripts (random_scenarios.sh, two_app_scenarios.sh,
# compare_loop_settings.sh), from the repository root: the adascale-run binary ($run; RUN, else
# the runtime-only build, else the full one), the labelled images ($idx, $labels; IDX and LABELS,
# default the Fashion-MNIST test split) and the output folder ($out; OUT, else a new temporary
# folder named after $1), created and announced; $first (FIRST_SEED, default 1); $results, the
# emptied per-scenario table; generate_scenario SEED FILE BUNDLE, which writes the seeded
# scenario and prints its heading; and with_settings KEYS NAME IN OUT, which copies scenario IN to
# OUT with the [adaptation] keys KEYS (KEY:VALUE,KEY:VALUE; empty: none; scenario.KEY:VALUE for a
# [scenario] key) and the name NAME.
run=${RUN:-build-rt/tools/adascale-run/adascale-run}
[ -x "$run" ] || run=build/tools/adascale-run/adascale-run
data=/usr/share/datasets/fashion-mnist
idx=${IDX:-$data/t10k-images-idx3-ubyte.gz}
labels=${LABELS:-$data/t10k-labels-idx1-ubyte.gz}
out=${OUT:-$(mktemp -d "/tmp/$1.XXXXXX")}
mkdir -p "$out"
echo "scenarios, summaries and traces: $out"
first=${FIRST_SEED:-1}
results=$out/results.tsv
: >"$results"

generate_scenario() {
  "$run" --bundle "$3" --generate-scenario "$1" --out "$2" >/dev/null
  echo
  echo "== seed $1: $(grep -m1 '^duration_s' "$2"), $(grep -c '^[0-9]' "$2") events"
}

with_settings() {
  # the keys go right after [adaptation], those named scenario.KEY after [scenario] as KEY; one
  # the generator writes too is refused as a duplicate
  awk -v keys="$1" -v name="$2" '
    function put(section,   n, i, kv, p) {
      n = split(keys, kv, ",")
      for (i = 1; i <= n; ++i) {
        split(kv[i], p, ":")
        if (section == "scenario" && p[1] ~ /^scenario\./) print substr(p[1], 10) " = " p[2]
        if (section == "adaptation" && p[1] !~ /^scenario\./) print p[1] " = " p[2]
      }
    }
    /^name = / { print "name = " name; next }
    { print }
    /^\[scenario\]/ && keys != "" { put("scenario") }
    /^\[adaptation\]/ && keys != "" { put("adaptation") }' "$3" >"$4"
}
