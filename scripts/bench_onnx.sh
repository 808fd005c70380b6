#!/usr/bin/env bash
# Latency anchor: batch 1, one thread, the runtime's XNNPACK backend against OpenCV's DNN module
# (DNN_BACKEND_OPENCV, CPU, cv::setNumThreads(1)) on the ONNX export of the same branches: the
# fp32 branches with the most and the fewest MACs (or BRANCHES), alternated ROUNDS times in one
# process; prints every round, the medians and their ratio (bench/onnx_compare.cpp).
# Usage: scripts/bench_onnx.sh BUNDLE [ROUNDS] [RUNS] [BRANCHES]   (docs/onnx-export.md)
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:?a bundle, e.g. runs/demo/model.bundle}
rounds=${2:-9}
runs=${3:-1000}
build=${BUILD_DIR:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$build/tools/adascale/adascale" export --format onnx --bundle "$bundle" --out "$out" >/dev/null
args=(latency --bundle "$bundle" --onnx "$out" --rounds "$rounds" --runs "$runs")
if [ $# -ge 4 ]; then args+=(--branches "$4"); fi
"$build/bench/onnx_compare" "${args[@]}"
