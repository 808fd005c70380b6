#!/usr/bin/env bash
# The main job, end to end on Fashion-MNIST: set up, build, train the multi-branch network (one
# backbone, 16 physically smaller branches trained together, each also as an int8 twin), evaluate
# every branch, export them as one bundle profiled in the LibTorch-free runtime, classify the test
# set with it, then replay the standard contention scenario (and a tighter one) with the
# adaptation loop and the static policies, and print the comparison tables and where the
# pictures are. CONFIG picks
# another training config, OUT another output folder (default runs/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
# libgomp spins while waiting for work; on a busy 2-core machine that costs LibTorch several
# times its speed, so threads wait passively
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
scripts/setup.sh
scripts/build.sh adascale adascale-run
config=${CONFIG:-configs/fmnist_supernet.ini}
scenario=${SCENARIO:-configs/scenarios/supernet.ini}
build=${BUILD_DIR:-build}
bin=$build/tools/adascale/adascale
run=$build/tools/adascale-run/adascale-run
out=${OUT:-runs/demo}
data=/usr/share/datasets/fashion-mnist
mkdir -p "$out"

echo "== 1. training the multi-branch network ($config) =="
"$bin" train --config "$config" --out "$out/supernet"
echo "== 2. every branch on the test split =="
"$bin" eval --checkpoint "$out/supernet/checkpoint.h5" --branches all --latency-runs 50
echo "== 3. exporting the bundle (profiled in the runtime, parity-checked against LibTorch) =="
"$bin" export --checkpoint "$out/supernet/checkpoint.h5" --branches all --out "$out/model.bundle"
echo "== 4. the runtime: branches of the bundle, then the test set through the largest =="
"$run" --bundle "$out/model.bundle" --list
"$run" --bundle "$out/model.bundle" --branch w1.00 \
  --idx "$data/t10k-images-idx3-ubyte.gz" --labels "$data/t10k-labels-idx1-ubyte.gz"
echo "== 5. the adaptation loop under contention ($scenario), against static policies =="
"$run" --bundle "$out/model.bundle" --scenario "$scenario" --trace-out "$out/scenario" \
  --idx "$data/t10k-images-idx3-ubyte.gz" --labels "$data/t10k-labels-idx1-ubyte.gz"
echo "== 6. the same timeline with budgets that only the fastest accurate branches meet =="
"$run" --bundle "$out/model.bundle" --scenario configs/scenarios/supernet-tight.ini \
  --trace-out "$out/scenario" \
  --idx "$data/t10k-images-idx3-ubyte.gz" --labels "$data/t10k-labels-idx1-ubyte.gz"
echo "demo done: checkpoint and bundle in $out/, traces and pictures (SVG) in $out/scenario/"
