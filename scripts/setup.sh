#!/usr/bin/env bash
# Installs the Debian packages AdaScale needs, only those missing (idempotent; run as root).
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config clang-format
  libtorch-dev libopenblas0-pthread libgloo-dev
  libopencv-dev libboost-program-options-dev libhdf5-dev zlib1g-dev
  libbenchmark-dev googletest libgtest-dev
  libxnnpack-dev libpthreadpool-dev libcpuinfo-dev nlohmann-json3-dev libpng-dev
  clang libclang-rt-14-dev
  dataset-fashion-mnist
  python3 python3-torch
  python3-onnx libonnx-dev libopencv-dnn-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
else
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install packages (run as root or with sudo)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# LibTorch must use the threaded OpenBLAS, not the reference BLAS (2-3x slower)
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  *) echo "setup: warning: libblas.so.3 resolves to '$blas', not OpenBLAS" >&2 ;;
esac
