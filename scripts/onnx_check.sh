#!/usr/bin/env bash
# ONNX export of a bundle, checked: every branch exported (adascale export --format onnx), every
# file through the onnx checker (Debian's python3-onnx, full_check), then every fp32 branch run by
# the runtime and by OpenCV's DNN module on the first IMAGES Fashion-MNIST test images: the
# largest logit difference and top-1 agreement per branch (bench/onnx_compare.cpp).
# Usage: scripts/onnx_check.sh BUNDLE [IMAGES]   (docs/onnx-export.md)
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:?a bundle, e.g. runs/demo/model.bundle}
images=${2:-200}
build=${BUILD_DIR:-build}
data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$build/tools/adascale/adascale" export --format onnx --bundle "$bundle" --out "$out"
/usr/bin/python3 - "$out" <<'PY'
import glob, sys
import onnx
files = sorted(glob.glob(sys.argv[1] + "/*.onnx"))
for f in files:
    onnx.checker.check_model(onnx.load(f), full_check=True)
print(f"onnx checker (onnx {onnx.__version__}, full_check): {len(files)} files accepted")
PY
"$build/bench/onnx_compare" parity --bundle "$bundle" --onnx "$out" --images "$images" \
  --idx "$data/t10k-images-idx3-ubyte.gz" --labels "$data/t10k-labels-idx1-ubyte.gz"
