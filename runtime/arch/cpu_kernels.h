// Which int8 micro-kernels this CPU runs: XNNPACK picks its int8 GEMM / convolution kernels
// from the CPU's features when it initialises (dot-product or plain NEON on ARM; AVX512, AVX2,
// SSE on x86), and the runtime's own per-architecture kernels (runtime/arch/) take over where
// they exist and are faster. The names are recorded with measured latencies and shown to users,
// so a number measured on one core type is never mistaken for another's.
#pragma once

namespace adascale {

// The instruction set family of XNNPACK's int8 kernels on this CPU, from the same feature tests
// XNNPACK's initialisation makes: "neondot" or "neon" (ARM), "avx512skx", "avx2", "avx",
// "sse41", "sse2" (x86), or "scalar".
const char* xnnpack_int8_isa();

// True when runtime/arch/ holds an AVX512-VNNI int8 convolution and this CPU runs it (only
// compiled for x86-64).
bool vnni_int8_conv_supported();

}  // namespace adascale
