# Cross-building the runtime-only configuration for 32-bit ARM (ARMv7 hard-float, NEON) with
# Debian's cross toolchain (crossbuild-essential-armhf) against a sysroot made by
# scripts/setup-cross.sh armhf; tests run through qemu-arm.
#   cmake -S . -B build-armhf -G Ninja -DADASCALE_RUNTIME_ONLY=ON \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/arm-linux-gnueabihf.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(ADASCALE_CROSS_TRIPLE arm-linux-gnueabihf)
set(ADASCALE_CROSS_ARCH armhf)
set(ADASCALE_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross-common.cmake)
