#!/usr/bin/env bash
# Configures (once) and builds AdaScale with Ninja + ccache. BUILD_DIR defaults to build/.
# Usage: scripts/build.sh [ninja targets...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
fi
# two cores: LibTorch translation units need ~1.5 GiB each, so two jobs fit in memory
ninja -C "$build" -j "${JOBS:-2}" "$@"
