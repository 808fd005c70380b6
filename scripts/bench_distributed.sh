#!/usr/bin/env bash
# Data-parallel training throughput on this host, side by side in one run: images per second of
# 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1 thread, on the quick config and on the
# multi-branch config's joint phase (a slice of Fashion-MNIST, one epoch each), plus the
# allreduce time per step not hidden behind compute, overlapped with backward or after it.
#   scripts/bench_distributed.sh [BUILD_DIR]
# LIMIT=12000 training images, ROUNDS=3 alternations of the quick config, MULTI_ROUNDS=1 of the
# multi-branch one.
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

median() { python3 -c "import statistics,sys; print(int(statistics.median(map(float, sys.argv[1:]))))" "$@"; }
median_ms() { python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:] if x!='-']; print(f'{statistics.median(v):.1f}' if v else '-')" "$@"; }

echo "| config | 1 rank x 1 thread | 1 rank x 2 threads | 2 ranks x 1 thread | efficiency: (2 x 1) / (2 x (1 x 1)) | allreduce ms/step not hidden (overlap / after backward) |"
echo "|---|---|---|---|---|---|"
# the settings alternate, ROUNDS times, so that a noisy minute hits them all alike; medians
rounds=${ROUNDS:-3}
q=configs/fmnist_quick.ini
declare -a r11 r12 r21 r21b r21s ar ab
for i in $(seq "$rounds"); do
  a=$(run q11 $q 1 1 --epochs 1); r11+=("$(rate "$a" "$epoch_line")")
  b=$(run q12 $q 1 2 --epochs 1); r12+=("$(rate "$b" "$epoch_line")")
  c=$(run q21 $q 2 1 --epochs 1); r21+=("$(rate "$c" "$epoch_line")"); ar+=("$(allreduce "$c" allreduce)")
  d=$(ADASCALE_ALLREDUCE=after-backward run q21after $q 2 1 --epochs 1)
  r21b+=("$(rate "$d" "$epoch_line")"); ab+=("$(allreduce "$d" allreduce)")
  e=$(run q21sync $q 2 1 --epochs 1 --train.batchnorm synchronized)
  r21s+=("$(rate "$e" "$epoch_line")")
done
m11=$(median "${r11[@]}"); m21=$(median "${r21[@]}"); m21b=$(median "${r21b[@]}")
eff=$(python3 -c "print(f'{$m21 / (2 * $m11):.2f}')")
m21s=$(median "${r21s[@]}")
echo "| quick (plain), rounds: 1x1 ${r11[*]}; 2x1 ${r21[*]} (after backward: ${r21b[*]}; synchronised BatchNorm: ${r21s[*]}) | $m11 | $(median "${r12[@]}") | $m21 ($m21b after backward, $m21s with synchronised BatchNorm) | $eff | $(median_ms "${ar[@]}") / $(median_ms "${ab[@]}") |"

s=configs/fmnist_supernet.ini
multi=(--epochs 1 --supernet.joint_epochs 1 --supernet.distill_steps 20)
declare -a s11 s12 s21 sj
for i in $(seq "${MULTI_ROUNDS:-1}"); do
  a=$(run s11 $s 1 1 "${multi[@]}"); s11+=("$(rate "$a" '^joint epoch')")
  b=$(run s12 $s 1 2 "${multi[@]}"); s12+=("$(rate "$b" '^joint epoch')")
  c=$(run s21 $s 2 1 "${multi[@]}"); s21+=("$(rate "$c" '^joint epoch')"); sj+=("$(allreduce "$c" "joint allreduce")")
done
m11=$(median "${s11[@]}"); m21=$(median "${s21[@]}")
eff=$(python3 -c "print(f'{$m21 / (2 * $m11):.2f}')")
echo "| multi-branch (joint phase), rounds: 1x1 ${s11[*]}; 2x1 ${s21[*]} | $m11 | $(median "${s12[@]}") | $m21 | $eff | - / $(median_ms "${sj[@]}") |"
