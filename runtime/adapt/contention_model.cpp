#include "runtime/adapt/contention_model.h"

#include "base/statistics.h"

namespace adascale {

void LevelFit::add(double z, double ratio) {
  const double k = forgetting_;
  w_ = k * w_ + 1;
  sz_ = k * sz_ + z;
  szz_ = k * szz_ + z * z;
  sr_ = k * sr_ + ratio;
  szr_ = k * szr_ + z * ratio;
}

LevelFit::Coefficients LevelFit::solve(double prior_alpha) const {
  // Normal equations of sum w (r - alpha - gamma z)^2 + ridge (alpha - prior)^2 + ridge gamma^2:
  // [w + ridge, sz; sz, szz + ridge] [alpha; gamma] = [sr + ridge prior; szr]. The determinant is
  // positive (w szz >= sz^2 by Cauchy-Schwarz, ridge > 0).
  Coefficients c;
  c.alpha = prior_alpha;
  if (w_ <= 0 || ridge_ <= 0) return c;
  const double a = w_ + ridge_, b = sz_, d = szz_ + ridge_;
  const double y0 = sr_ + ridge_ * prior_alpha, y1 = szr_;
  const double det = a * d - b * b;
  if (!(det > 0)) return c;
  c.alpha = (y0 * d - b * y1) / det;
  c.gamma = (a * y1 - b * y0) / det;
  return c;
}

void QuantileRing::push(double value, size_t capacity, double q) {
  if (capacity == 0) capacity = 1;
  if (values_.size() < capacity) {
    values_.push_back(value);
  } else {
    values_[next_] = value;
  }
  next_ = (next_ + 1) % capacity;
  quantile_ = base::percentile(values_, q);
}

}  // namespace adascale
