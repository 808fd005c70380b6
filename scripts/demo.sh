#!/usr/bin/env bash
# The main job, end to end: set up, build, train the backbone on Fashion-MNIST, evaluate it.
# CONFIG picks another config (default: the quick one, a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh adascale
config=${CONFIG:-configs/fmnist_quick.ini}
bin=${BUILD_DIR:-build}/trainer/adascale
out=runs/demo
echo "== training ($config) =="
"$bin" train --config "$config" --out "$out"
echo "== evaluating $out/checkpoint.h5 on the test split =="
"$bin" eval --checkpoint "$out/checkpoint.h5"
