#include "base/statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace adascale::base {

double percentile(std::vector<double> values, double q) {
  // written as a negation so that NaN is refused too
  if (!(q >= 0.0 && q <= 1.0))
    throw std::invalid_argument("percentile: q must be in [0, 1], got " + std::to_string(q));
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double rank = q * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const auto lo_it = values.begin() + static_cast<std::ptrdiff_t>(lo);
  std::nth_element(values.begin(), lo_it, values.end());
  const double lower = *lo_it;
  const double frac = rank - static_cast<double>(lo);
  if (frac == 0.0) return lower;
  // the next rank is the smallest value above the lower one, after nth_element
  const double upper = *std::min_element(lo_it + 1, values.end());
  // equal neighbours (infinities included) need no interpolation, and inf - inf would be NaN
  if (upper == lower) return lower;
  return lower + frac * (upper - lower);
}

}  // namespace adascale::base
