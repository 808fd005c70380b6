#!/usr/bin/env bash
# The test command: set up packages, build everything, run every test through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
# libgomp spins while waiting for work; with test suites sharing 2 cores that costs LibTorch
# several times its speed, so threads wait passively
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
scripts/setup.sh
scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j 2 --timeout 900
