#!/usr/bin/env bash
# Data-parallel training throughput on this host, side by side in one run: images per second of
# 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1 thread, on the quick config and on the
# multi-branch config's joint phase (a slice of Fashion-MNIST, one epoch each), plus the
# allreduce time per step not hidden behind compute, overlapped with backward or after it.
#   scripts/bench_distributed.sh [BUILD_DIR]      (LIMIT=12000 training images by default)
# Prints a markdown table; keep the machine otherwise idle while it runs.
set -euo pipefail
build=${1:-build}
limit=${LIMIT:-12000}
adascale=$build/tools/adascale/adascale
[ -x "$adascale" ] || { echo "bench_distributed: no $adascale (build it first)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_WAIT_POLICY=PASSIVE

# run LABEL CONFIG NPROC THREADS [extra args]: prints the log's path
run() {
  local label=$1 config=$2 nproc=$3 threads=$4
  shift 4
  local log=$work/$label.log
  "$adascale" train --config "$config" --nproc "$nproc" --threads "$threads" \
    --data.limit_train "$limit" --data.limit_test 500 --out "$work/$label" "$@" >"$log" 2>&1 ||
    { echo "bench_distributed: $label failed:" >&2; tail -3 "$log" >&2; exit 1; }
  echo "$log"
}
# the img/s of a log's first line matching PATTERN: the epoch's summary line (all ranks' images
# over rank 0's step time), not the progress line (rank 0's own images)
epoch_line='^epoch +[0-9]+/[0-9]+ +lr'
rate() { grep -E "$2" "$1" | head -1 | grep -oE '[0-9]+ img/s' | grep -oE '[0-9]+'; }
allreduce() { grep -oE "^$2: [0-9.]+ ms" "$1" | grep -oE '[0-9.]+' | head -1 || echo "-"; }

echo "| config | 1 rank x 1 thread | 1 rank x 2 threads | 2 ranks x 1 thread | efficiency vs 2 x (1x1) | allreduce ms/step (overlap / after backward) |"
echo "|---|---|---|---|---|---|"
q=configs/fmnist_quick.ini
a=$(run q11 $q 1 1 --epochs 1)
b=$(run q12 $q 1 2 --epochs 1)
c=$(run q21 $q 2 1 --epochs 1)
d=$(ADASCALE_ALLREDUCE=after-backward run q21after $q 2 1 --epochs 1)
r11=$(rate "$a" "$epoch_line"); r12=$(rate "$b" "$epoch_line"); r21=$(rate "$c" "$epoch_line")
eff=$(python3 -c "print(f'{$r21 / (2 * $r11):.2f}')")
echo "| quick (plain) | $r11 | $r12 | $r21 | $eff | $(allreduce "$c" allreduce) / $(allreduce "$d" allreduce) |"

s=configs/fmnist_supernet.ini
multi=(--epochs 1 --supernet.joint_epochs 1 --supernet.distill_steps 20)
a=$(run s11 $s 1 1 "${multi[@]}")
b=$(run s12 $s 1 2 "${multi[@]}")
c=$(run s21 $s 2 1 "${multi[@]}")
r11=$(rate "$a" '^joint epoch'); r12=$(rate "$b" '^joint epoch'); r21=$(rate "$c" '^joint epoch')
eff=$(python3 -c "print(f'{$r21 / (2 * $r11):.2f}')")
echo "| multi-branch (joint phase) | $r11 | $r12 | $r21 | $eff | - / $(allreduce "$c" "joint allreduce") |"
