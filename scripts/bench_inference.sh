#!/usr/bin/env bash
# Batch-1, one-thread inference latency of the largest and the smallest branch: the runtime's
# XNNPACK backend (fp32 and int8) and LibTorch eager (all timed by `adascale export` in one
# process) against PyTorch Mobile (optimize_for_mobile) and PyTorch's qnnpack int8 model (Debian's
# python3-torch) on the same architecture, alternated ROUNDS times; prints every round and the
# ratios of the medians. The int8 branches are calibrated without fine-tuning (--qat-steps 0):
# their latency does not depend on it.
# Usage: scripts/bench_inference.sh CHECKPOINT CONFIG [ROUNDS [SMALLEST PY_ARGS]]
#   a single network: the smallest branch is CHECKPOINT pruned to a quarter of its channels
#   (prune:0.25; a MobileNetV2's expansion channels)
#   a multi-branch CHECKPOINT: its branches w1.00 and SMALLEST, which PY_ARGS describe to
#   scripts/bench/mobile_latency.py, e.g.
#   scripts/bench_inference.sh CKPT configs/fmnist_mbv2_supernet.ini 3 'w0.25>d1/2@3/4' \
#     '--width 0.25 --depths 1,2,1,1'
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:?checkpoint of a trained resnet}
config=${2:?the config it was trained with}
rounds=${3:-3}
smallest=${4:-}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
bin=${BUILD_DIR:-build}/tools/adascale/adascale
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$smallest" ]; then
  sources=(--checkpoint "$ckpt" --branches "w1.00,$smallest,w1.00>int8,$smallest>int8")
  big_name=w1.00
  small_name=$smallest
  precisions=()
  small_args=${5:?the mobile_latency.py arguments that describe $smallest}
else
  "$bin" compress --checkpoint "$ckpt" --ops prune:0.25 --out "$work/small.h5" >/dev/null
  sources=(--checkpoint "$ckpt" --checkpoint "$work/small.h5")
  big_name=backbone
  small_name=prune0.25
  precisions=(--precisions fp32,int8)
  # the python model of the pruned checkpoint: a ResNet's quartered widths, a MobileNetV2's kept
  # expansion fraction
  small_args=$(/usr/bin/python3 - "$config" <<'PY'
import configparser, sys
cp = configparser.ConfigParser(); cp.read_string("[top]\n" + open(sys.argv[1]).read())
m = cp["model"]; q = lambda v: max(1, round(0.25 * int(v)))
if m.get("arch", "resnet") == "mobilenetv2":
    print("--keep 0.25")
else:
    print("--stem", q(m["stem_width"]), "--widths", ",".join(str(q(w)) for w in m["widths"].split(",")))
PY
)
fi
rows=()
for r in $(seq "$rounds"); do
  out=$("$bin" export "${sources[@]}" --out "$work/b.bundle" \
          "${precisions[@]}" --qat-steps 0 --latency-runs 1000 --test-images 256 \
          --parity-images 200)
  rm -rf "$work/b.bundle"
  big=$(echo "$out" | awk -v n="$big_name" '$1 == n {print $5, $9}')
  small=$(echo "$out" | awk -v n="$small_name" '$1 == n {print $5, $9}')
  big8=$(echo "$out" | awk -v n="$big_name>int8" '$1 == n {print $5}')
  small8=$(echo "$out" | awk -v n="$small_name>int8" '$1 == n {print $5}')
  # pytorch_mobile_ms and qnnpack_int8_ms
  mob_big=$(/usr/bin/python3 scripts/bench/mobile_latency.py --config "$config" | awk '{print $4, $6}')
  # shellcheck disable=SC2086
  mob_small=$(/usr/bin/python3 scripts/bench/mobile_latency.py --config "$config" $small_args |
                awk '{print $4, $6}')
  echo "round $r: largest runtime/eager/runtime-int8 ms: $big $big8, mobile/qnnpack ms: $mob_big;" \
       "smallest: $small $small8, $mob_small"
  rows+=("$big $big8 $mob_big $small $small8 $mob_small")
done
printf '%s\n' "${rows[@]}" | /usr/bin/python3 -c '
import statistics, sys
cols = list(zip(*[list(map(float, l.split())) for l in sys.stdin if l.strip()]))
med = [statistics.median(c) for c in cols]
for name, (rt, eager, rt8, mob, qn) in (("largest", med[0:5]), ("smallest", med[5:10])):
    print(f"{name}: runtime {rt:.3f} ms, LibTorch eager {eager:.3f} ms, PyTorch Mobile {mob:.3f} ms;"
          f" runtime/mobile {rt/mob:.2f}x, runtime/eager {rt/eager:.2f}x")
    print(f"{name} int8: runtime {rt8:.3f} ms, qnnpack {qn:.3f} ms; runtime int8/qnnpack "
          f"{rt8/qn:.2f}x, runtime int8/fp32 {rt8/rt:.2f}x")
'
