#!/usr/bin/env bash
# Batch-1, one-thread inference latency of the largest and the smallest branch: the runtime's
# XNNPACK backend and LibTorch eager (both timed by `adascale export` in one process) against
# PyTorch Mobile (optimize_for_mobile, Debian's python3-torch) on the same architecture,
# alternated ROUNDS times; prints every round and the ratios of the medians.
# Usage: scripts/bench_inference.sh CHECKPOINT CONFIG [ROUNDS]
#   the smallest branch is CHECKPOINT pruned to a quarter of its channels (prune:0.25)
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:?checkpoint of a trained resnet}
config=${2:?the config it was trained with}
rounds=${3:-3}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
bin=${BUILD_DIR:-build}/trainer/adascale
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" compress --checkpoint "$ckpt" --ops prune:0.25 --out "$work/small.h5" >/dev/null
read -r stem widths < <(/usr/bin/python3 - "$config" <<'PY'
import configparser, sys
cp = configparser.ConfigParser(); cp.read_string("[top]\n" + open(sys.argv[1]).read())
m = cp["model"]; q = lambda v: max(1, round(0.25 * int(v)))
print(q(m["stem_width"]), ",".join(str(q(w)) for w in m["widths"].split(",")))
PY
)
rows=()
for r in $(seq "$rounds"); do
  out=$("$bin" export --checkpoint "$ckpt" --checkpoint "$work/small.h5" --out "$work/b.bundle" \
          --latency-runs 1000 --test-images 256 --parity-images 64)
  rm -rf "$work/b.bundle"
  big=$(echo "$out" | awk '$1 == "backbone" {print $5, $9}')
  small=$(echo "$out" | awk '$1 == "prune0.25" {print $5, $9}')
  mob_big=$(/usr/bin/python3 scripts/bench/mobile_latency.py --config "$config" | awk '{print $4}')
  mob_small=$(/usr/bin/python3 scripts/bench/mobile_latency.py --config "$config" --stem "$stem" \
                --widths "$widths" | awk '{print $4}')
  echo "round $r: largest runtime/eager/mobile ms: $big $mob_big; smallest: $small $mob_small"
  rows+=("$big $mob_big $small $mob_small")
done
printf '%s\n' "${rows[@]}" | /usr/bin/python3 -c '
import statistics, sys
cols = list(zip(*[list(map(float, l.split())) for l in sys.stdin if l.strip()]))
med = [statistics.median(c) for c in cols]
for name, (rt, eager, mob) in (("largest", med[0:3]), ("smallest", med[3:6])):
    print(f"{name}: runtime {rt:.3f} ms, LibTorch eager {eager:.3f} ms, PyTorch Mobile {mob:.3f} ms;"
          f" runtime/mobile {rt/mob:.2f}x, runtime/eager {rt/eager:.2f}x")
'
