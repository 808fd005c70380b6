// Order statistics shared by the runtime (profiler, backend timing), the exporter and the tools,
// so a "p95" means the same thing everywhere. std only.
//
//   percentile(values, q)  the q-quantile, q in [0, 1], with linear interpolation between the
//                          closest ranks (numpy's default, "linear"): rank = q * (n - 1), the
//                          result interpolates values[floor(rank)] and values[ceil(rank)] of the
//                          sorted input. percentile(v, 0.5) is the median (the mean of the two
//                          middle values for an even count). An empty input gives NaN (no data is
//                          not zero latency); q outside [0, 1] or NaN throws
//                          std::invalid_argument. NaN values in the input are not meaningful:
//                          callers pass measured, finite values.
#pragma once

#include <vector>

namespace adascale::base {

// By value: the values are partially reordered (nth_element), a copy the caller need not make.
double percentile(std::vector<double> values, double q);

}  // namespace adascale::base
