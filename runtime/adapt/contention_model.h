// Contention model: how much slower than at idle a branch of a given size runs at one contention
// level, fitted online from observed latencies, and the rings of recent ratios the tail factors
// come from. Internal to the profiler (profiler.h).
#pragma once

#include <cstddef>
#include <vector>

namespace adascale {

// Latency multiplier of a branch at one contention level: alpha + gamma * z, where z is the
// branch's size relative to the others (reference latency / the branch's catalog latency) and
// the multiplier applies on top of the sensed context factor. alpha is the share of the CPU the
// factor misses, gamma * z a wait that does not grow with the request (a slice of another task,
// a migration), which costs a small branch a larger share of its latency than a large one: a
// single multiplicative factor learnt from the running branch is too pessimistic for the larger
// branches and too optimistic for the smaller ones.
//
// Exponentially weighted least squares over (z, observed / predicted-at-idle) pairs, with a
// ridge toward alpha = prior (the idle drift) and gamma = 0: while only one size has been seen
// the two terms cannot be told apart, and the ridge splits the difference between them instead
// of letting either run away; observations of a second size (a probe) decide it. Five running
// sums, so an update and a solve cost a few multiplications.
class LevelFit {
 public:
  struct Coefficients {
    double alpha = 1, gamma = 0;
    double at(double z) const { return alpha + gamma * z; }
  };
  // forgetting: weight kept by the older observations per new one; ridge: the prior's weight in
  // observations.
  LevelFit(double forgetting = 0.95, double ridge = 1.0) : forgetting_(forgetting), ridge_(ridge) {}
  void add(double z, double ratio);
  Coefficients solve(double prior_alpha) const;
  double weight() const { return w_; }

 private:
  double forgetting_, ridge_;
  double w_ = 0, sz_ = 0, szz_ = 0, sr_ = 0, szr_ = 0;
};

// A ring of the last `capacity` values with their q-quantile kept up to date on each push, so
// that predictions read it without sorting.
class QuantileRing {
 public:
  void push(double value, size_t capacity, double q);
  size_t size() const { return values_.size(); }
  double quantile() const { return quantile_; }  // 0 while empty
  const std::vector<double>& values() const { return values_; }

 private:
  std::vector<double> values_;
  size_t next_ = 0;
  double quantile_ = 0;
};

}  // namespace adascale
