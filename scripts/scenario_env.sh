# Sourced by the random-scenario scripts (random_scenarios.sh, two_app_scenarios.sh,
# compare_loop_settings.sh), from the repository root: the adascale-run binary ($run; RUN, else
# the runtime-only build, else the full one), the labelled images ($idx, $labels; IDX and LABELS,
# default the Fashion-MNIST test split) and the output folder ($out; OUT, else a new temporary
# folder named after $1), created and announced; $first (FIRST_SEED, default 1); $results, the
# emptied per-scenario table; and generate_scenario SEED FILE BUNDLE, which writes the seeded
# scenario and prints its heading.
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
