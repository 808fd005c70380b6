#!/usr/bin/env bash
# Top-1 agreement of the aarch64 runtime (under qemu-user) with the x86-64 runtime on one bundle:
# every branch (fp32 and int8 twins) classifies the Fashion-MNIST test split on both, and the
# per-image predictions are compared. Needs build/ (x86) and build-arm64/ (scripts/test-arm64.sh).
# Usage: scripts/arm64_agreement.sh BUNDLE [QEMU_CPU]   LIMIT=N images (default the whole split),
# BRANCHES="A B ..." (default every branch). Emulation is slow (about 70 ms per image for the
# demo's largest branch): the whole split on every branch takes hours.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:?usage: scripts/arm64_agreement.sh BUNDLE [QEMU_CPU]}
cpu=${2:-max}
data=/usr/share/datasets/fashion-mnist
x86=${BUILD_DIR:-build}/tools/adascale-run/adascale-run
arm=${ARM_BUILD_DIR:-build-arm64}/tools/adascale-run/adascale-run
sysroot=${ADASCALE_SYSROOT:-/opt/adascale-sysroot/arm64}
limit=()
[ -n "${LIMIT:-}" ] && limit=(--limit "$LIMIT")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
input=(--idx "$data/t10k-images-idx3-ubyte.gz" --labels "$data/t10k-labels-idx1-ubyte.gz")
branches=${BRANCHES:-$("$x86" --bundle "$bundle" --list | awk 'NR > 2 && $2 ~ /^[0-9.]+$/ {print $1}')}
printf '%-28s %8s %10s %10s %10s\n' branch images x86_acc arm_acc agreement
for b in $branches; do
  "$x86" --bundle "$bundle" --branch "$b" "${input[@]}" "${limit[@]}" \
    --predictions "$work/x86" >"$work/x86.out"
  QEMU_CPU=$cpu qemu-aarch64 -L "$sysroot" "$arm" --bundle "$bundle" --branch "$b" \
    "${input[@]}" "${limit[@]}" --predictions "$work/arm" >"$work/arm.out"
  n=$(wc -l <"$work/x86")
  same=$(paste -d' ' "$work/x86" "$work/arm" | awk '$1 == $2' | wc -l)
  printf '%-28s %8d %10s %10s %9.2f%%\n' "$b" "$n" \
    "$(awk '/^accuracy/ {print $2}' "$work/x86.out")" \
    "$(awk '/^accuracy/ {print $2}' "$work/arm.out")" "$(echo "100 * $same / $n" | bc -l)"
done
