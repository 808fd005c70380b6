#!/bin/bash
# Trains the multi-branch network of a config once, then every branch of its space as a model of
# its own (same data, epochs, augmentation), prints the comparison table (markdown) and draws the
# per-branch differences in OUT/comparison.svg.
# usage: scripts/compare_independent.sh [CONFIG] [OUT] [--section.key VALUE ...]
# e.g.   scripts/compare_independent.sh configs/fmnist_supernet.ini runs/cmp --data.limit_train 20000
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/fmnist_supernet.ini}
OUT=${2:-runs/supernet_vs_independent}
shift $(($# < 2 ? $# : 2))
# both arms run in the caller's OpenMP environment: with nothing else running, OpenMP's default
# waiting is the faster for both (OMP_WAIT_POLICY=PASSIVE slows small networks, docs/benchmarks.md)
ADASCALE=${BUILD_DIR:-build}/tools/adascale/adascale
if [ ! -f "$OUT/summary.json" ]; then
  "$ADASCALE" train --config "$CONFIG" --out "$OUT" "$@"
fi
"$ADASCALE" train --config "$CONFIG" --out "$OUT" --independent "$@"
/usr/bin/python3 scripts/bench/compare_independent.py "$OUT" --svg "$OUT/comparison.svg"
