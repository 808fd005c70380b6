# Cross-building the runtime-only configuration for 64-bit ARM with Debian's cross toolchain
# (crossbuild-essential-arm64) against a sysroot made by scripts/setup-cross.sh. Tests run
# through qemu-user (CTest's CROSSCOMPILING_EMULATOR); QEMU_CPU picks the emulated core
# (e.g. max, cortex-a53) at test time.
#   cmake -S . -B build-arm64 -G Ninja -DADASCALE_RUNTIME_ONLY=ON \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(ADASCALE_CROSS_TRIPLE aarch64-linux-gnu)
set(ADASCALE_CROSS_ARCH arm64)
set(ADASCALE_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross-common.cmake)
