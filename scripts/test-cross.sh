#!/usr/bin/env bash
# Cross-builds the runtime-only configuration for ARM and runs its CTest suite under qemu-user,
# twice: on an emulated core with the dot-product extension (-cpu max: XNNPACK's NEONDOT int8
# kernels on arm64) and, for the op parity harness and the kernel tests, on a core without it (Cortex-A53
# for arm64, Cortex-A15 for armhf: XNNPACK's plain NEON int8 kernels). Each run checks that the
# runtime names the int8 kernel family it selected. Prints the embedded binary sizes at the end.
# Timings under emulation mean nothing: nothing here measures speed.
# Usage: scripts/test-cross.sh arm64|armhf   BUILD_DIR (default build-<arch>), JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?usage: scripts/test-cross.sh arm64|armhf}
case "$arch" in
  arm64) triple=aarch64-linux-gnu plain_cpu=cortex-a53 max_kernel=xnnpack-neondot ;;
  # Debian's cpuinfo sees no dot product on 32-bit ARM under qemu-arm (no hwcap for it there),
  # so XNNPACK, which asks cpuinfo, runs its NEON int8 kernels on both emulated cores
  armhf) triple=arm-linux-gnueabihf plain_cpu=cortex-a15 max_kernel=xnnpack-neon ;;
  *) echo "test-cross: unknown architecture '$arch' (known: arm64, armhf)" >&2; exit 2 ;;
esac
scripts/setup-cross.sh "$arch"
build=${BUILD_DIR:-build-$arch}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DADASCALE_RUNTIME_ONLY=ON \
    -DCMAKE_TOOLCHAIN_FILE="cmake/toolchains/$triple.cmake"
fi
ninja -C "$build" -j "${JOBS:-2}"

echo "== $arch (qemu -cpu max: int8 kernels $max_kernel): the whole suite =="
(cd "$build" && QEMU_CPU=max ADASCALE_EXPECT_INT8_KERNEL=$max_kernel \
  ctest --output-on-failure -j "${JOBS:-2}" --timeout 900)
echo "== $arch (qemu -cpu $plain_cpu: no dot product): op parity and kernel tests =="
(cd "$build" && QEMU_CPU=$plain_cpu ADASCALE_EXPECT_INT8_KERNEL=xnnpack-neon \
  ctest --output-on-failure -j "${JOBS:-2}" --timeout 900 -R 'RuntimeOp|RuntimeArchKernels')

stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
"$triple-strip" -o "$stripped" "$build/tools/adascale-run/adascale-run"
printf '%s sizes: adascale-run %s bytes stripped (%s unstripped), libadascale_runtime.a %s bytes\n' \
  "$arch" "$(stat -c %s "$stripped")" "$(stat -c %s "$build/tools/adascale-run/adascale-run")" \
  "$(stat -c %s "$build/runtime/libadascale_runtime.a")"
