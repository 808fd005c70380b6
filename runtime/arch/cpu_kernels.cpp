#include "runtime/arch/cpu_kernels.h"

#include <cpuinfo.h>

#if defined(__x86_64__)
#include "runtime/arch/conv2d_int8_vnni.h"
#endif

namespace adascale {

const char* xnnpack_int8_isa() {
  // the order of XNNPACK's own checks when it picks its qc8/qs8 kernels
  static const char* const isa = [] {
    if (!cpuinfo_initialize()) return "scalar";
#if defined(__aarch64__) || defined(__arm__)
    if (cpuinfo_has_arm_neon_dot()) return "neondot";
    if (cpuinfo_has_arm_neon()) return "neon";
#elif defined(__x86_64__) || defined(__i386__)
    if (cpuinfo_has_x86_avx512f() && cpuinfo_has_x86_avx512bw() && cpuinfo_has_x86_avx512dq() &&
        cpuinfo_has_x86_avx512vl())
      return "avx512skx";
    if (cpuinfo_has_x86_avx2()) return "avx2";
    if (cpuinfo_has_x86_avx()) return "avx";
    if (cpuinfo_has_x86_sse4_1()) return "sse41";
    if (cpuinfo_has_x86_sse2()) return "sse2";
#endif
    return "scalar";
  }();
  return isa;
}

bool vnni_int8_conv_supported() {
#if defined(__x86_64__)
  return Conv2dInt8Vnni::supported();
#else
  return false;
#endif
}

}  // namespace adascale
