// Int8 arithmetic shared by the reference kernels; docs/int8-arithmetic.md is its specification.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "runtime/graph.h"

namespace adascale {

// Rounds an already rescaled value to nearest-even, adds the zero point and clamps to [lo, hi].
// Clamping happens before rounding (as XNNPACK does), so huge values never overflow int32.
// A NaN (a weight scale of a hostile bundle times zero) maps to the zero point.
inline int8_t requantize(float scaled, int32_t zero_point, int32_t lo, int32_t hi) {
  if (std::isnan(scaled)) scaled = 0.0f;
  scaled = std::min(std::max(scaled, static_cast<float>(lo - zero_point)),
                    static_cast<float>(hi - zero_point));
  return static_cast<int8_t>(static_cast<int32_t>(std::nearbyint(scaled)) + zero_point);
}

// Int8 output range of a fused activation: relu clamps at the zero point, relu6 also at 6.0.
inline void activation_range_i8(Activation activation, float scale, int32_t zero_point, int32_t* lo,
                                int32_t* hi) {
  *lo = -128;
  *hi = 127;
  if (activation == Activation::kNone) return;
  *lo = std::max<int32_t>(-128, zero_point);
  if (activation == Activation::kRelu6) {
    const float six = std::nearbyint(6.0f / scale) + static_cast<float>(zero_point);
    *hi = static_cast<int32_t>(std::min(127.0f, std::max(-128.0f, six)));
  }
}

}  // namespace adascale
