#!/usr/bin/env bash
# The exported ONNX models' numbers against the runtime's: every branch of BUNDLE exported
# (adascale export --format onnx), then run on the first IMAGES Fashion-MNIST test images by the
# runtime (adascale-run --predictions) and by scripts/bench/onnx_eval.py (a float32 evaluator of
# the exporter's operator set, ONNX QuantizeLinear / DequantizeLinear semantics for the int8 QDQ
# models). Prints, per branch: images, both accuracies and the top-1 agreement.
# Exit status 1 when an fp32 branch agrees on less than MIN_FP32 or an int8 branch on less than
# MIN_INT8 of the images (defaults 0.999 and 0.99).
# Usage: scripts/onnx_qdq_check.sh BUNDLE [IMAGES]   (docs/onnx-export.md)
# Environment: BUILD_DIR (build), FASHION_MNIST_DIR, BACKEND (the runtime's, default xnnpack).
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:?a bundle, e.g. runs/demo/model.bundle}
images=${2:-1000}
build=${BUILD_DIR:-build}
data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
backend=${BACKEND:-xnnpack}
min_fp32=${MIN_FP32:-0.999}
min_int8=${MIN_INT8:-0.99}
idx="$data/t10k-images-idx3-ubyte.gz"
labels="$data/t10k-labels-idx1-ubyte.gz"
py=/usr/bin/python3  # Debian's python3-onnx and python3-torch
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$build/tools/adascale/adascale" export --format onnx --bundle "$bundle" --out "$out/onnx" \
  > "$out/export.txt"
tail -n 1 "$out/export.txt"
# the first IMAGES labels, one per line
"$py" - "$labels" "$images" > "$out/labels.txt" <<'PY'
import gzip, sys
data = gzip.open(sys.argv[1]).read() if sys.argv[1].endswith(".gz") else open(sys.argv[1], "rb").read()
n = min(int.from_bytes(data[4:8], "big"), int(sys.argv[2]))
sys.stdout.write("".join(f"{b}\n" for b in data[8:8 + n]))
PY

# export lines: "BRANCH: PATH, BYTES bytes, NODES nodes, opset 13[, int8 QDQ]"
printf '%-30s %-5s %7s %9s %9s %9s %8s\n' branch kind images runtime onnx agree onnx_s
status=0
while IFS= read -r line; do
  case $line in *": $out/onnx/"*) ;; *) continue ;; esac
  branch=${line%%": $out/onnx/"*}
  file=${line#*": "}
  file=${file%%, *}
  kind=fp32
  case $line in *", int8 QDQ") kind=int8 ;; esac
  "$build/tools/adascale-run/adascale-run" --bundle "$bundle" --branch "$branch" \
    --backend "$backend" --threads 1 --idx "$idx" --labels "$labels" --limit "$images" \
    --predictions "$out/runtime.txt" > "$out/runtime.log"
  start=$(date +%s.%N)
  "$py" scripts/bench/onnx_eval.py "$file" --idx "$idx" --limit "$images" \
    --predictions "$out/onnx.txt" > "$out/onnx.log"
  end=$(date +%s.%N)
  read -r n rt_acc onnx_acc agree < <(paste "$out/labels.txt" "$out/runtime.txt" "$out/onnx.txt" |
    awk '{ n++; r += ($2 == $1); o += ($3 == $1); a += ($2 == $3) }
         END { if (n == 0) n = 1e-300; printf "%d %.4f %.4f %.4f\n", n, r / n, o / n, a / n }')
  if [ "$(wc -l < "$out/runtime.txt")" -ne "$(wc -l < "$out/onnx.txt")" ]; then
    echo "$branch: $(wc -l < "$out/runtime.txt") runtime predictions," \
      "$(wc -l < "$out/onnx.txt") onnx predictions" >&2
    status=1
  fi
  min=$min_fp32
  [ "$kind" = int8 ] && min=$min_int8
  flag=
  if awk -v a="$agree" -v m="$min" 'BEGIN { exit !(a < m) }'; then flag=" <"; status=1; fi
  printf '%-30s %-5s %7d %9s %9s %9s %8.1f%s\n' "$branch" "$kind" "$n" "$rt_acc" "$onnx_acc" \
    "$agree" "$(echo "$end - $start" | bc)" "$flag"
done < "$out/export.txt"
echo "runtime backend $backend, 1 thread; onnx: scripts/bench/onnx_eval.py (torch $("$py" -c \
  'import torch; print(torch.__version__)'), float32); '<' marks agreement below" \
  "$min_fp32 (fp32) / $min_int8 (int8)"
exit $status
