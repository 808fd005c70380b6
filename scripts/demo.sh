#!/usr/bin/env bash
# The main job, end to end on Fashion-MNIST: set up, build, train the backbone, evaluate it,
# compress it into physically smaller variants (pruned, low-rank, depthwise-separable), export
# the backbone and its variants as one bundle profiled in the runtime, then classify the test
# set with the LibTorch-free runtime. CONFIG picks another training config.
set -euo pipefail
cd "$(dirname "$0")/.."
# libgomp spins while waiting for work; on a busy 2-core machine that costs LibTorch several
# times its speed, so threads wait passively
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
scripts/setup.sh
scripts/build.sh adascale adascale-run
config=${CONFIG:-configs/fmnist_quick.ini}
build=${BUILD_DIR:-build}
bin=$build/trainer/adascale
run=$build/runtime/cli/adascale-run
out=runs/demo
data=/usr/share/datasets/fashion-mnist
mkdir -p "$out"

echo "== 1. training the backbone ($config) =="
"$bin" train --config "$config" --out "$out/backbone"
echo "== 2. evaluating it on the test split =="
"$bin" eval --checkpoint "$out/backbone/checkpoint.h5"
echo "== 3. compressing it =="
"$bin" compress --checkpoint "$out/backbone/checkpoint.h5" --ops prune:0.5 --finetune-epochs 1 \
  --out "$out/prune50.h5"
"$bin" compress --checkpoint "$out/backbone/checkpoint.h5" --ops dpconv --finetune-epochs 1 \
  --out "$out/dpconv.h5"
"$bin" compress --checkpoint "$out/backbone/checkpoint.h5" --ops lowrank:0.3 --out "$out/lowrank30.h5"
echo "== 4. exporting the bundle (profiled in the runtime, parity-checked against LibTorch) =="
"$bin" export --checkpoint "$out/backbone/checkpoint.h5" --checkpoint "$out/prune50.h5" \
  --checkpoint "$out/dpconv.h5" --checkpoint "$out/lowrank30.h5" --out "$out/model.bundle"
echo "== 5. the runtime: branches of the bundle, then the test set through two of them =="
"$run" --bundle "$out/model.bundle" --list
for branch in backbone prune0.50; do
  "$run" --bundle "$out/model.bundle" --branch "$branch" \
    --idx "$data/t10k-images-idx3-ubyte.gz" --labels "$data/t10k-labels-idx1-ubyte.gz"
done
echo "demo done: checkpoints and the bundle are in $out/"
