# Sourced by the random-scenario scripts (random_scenarios.sh, two_app_scenarios.sh,
# compare_loop_settings.sh), from the repository root: the adascale-run binary ($run; RUN, else
# the runtime-only build, else the full one), the labelled images ($idx, $labels; IDX and LABELS,
# default the Fashion-MNIST test split) and the output folder ($out; OUT, else a new temporary
# folder named after $1), created and announced; $first (FIRST_SEED, default 1); $results, the
# emptied per-scenario table; generate_scenario SEED FILE BUNDLE, which writes the seeded
# scenario and prints its heading; and with_settings KEYS NAME IN OUT, which copies scenario IN to
# OUT with the [adaptation] keys KEYS (KEY:VALUE,KEY:VALUE; empty: none; scenario.KEY:VALUE for a
# [scenario] key; each replaces the file's own) and the name NAME.
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
  # the keys go right after [adaptation], those named scenario.KEY after [scenario] as KEY; a key
  # that the file sets in that section already is replaced
  awk -v keys="$1" -v name="$2" '
    BEGIN {
      n = split(keys, kv, ",")
      for (i = 1; i <= n; ++i) {
        split(kv[i], p, ":")
        if (p[1] ~ /^scenario\./) { k = "scenario"; key[i] = substr(p[1], 10) }
        else { k = "adaptation"; key[i] = p[1] }
        section[i] = k; value[i] = p[2]; given[k, key[i]] = 1
      }
    }
    function put(s,   i) { for (i = 1; i <= n; ++i) if (section[i] == s) print key[i] " = " value[i] }
    /^\[/ { current = $0; gsub(/[][]/, "", current) }
    /^name = / && current == "scenario" { print "name = " name; next }
    /^[a-z_]+ = / && given[current, $1] { next }
    { print }
    /^\[scenario\]$/ { put("scenario") }
    /^\[adaptation\]$/ { put("adaptation") }' "$3" >"$4"
}
