#include "runtime/adapt/period_schedule.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace adascale {
namespace {

uint64_t process_seed(const void* self) {
  // splitmix64 of the pid and the address: distinct, well-mixed seeds for distinct loops
  uint64_t x = (static_cast<uint64_t>(getpid()) << 32) ^ reinterpret_cast<uintptr_t>(self);
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

PeriodSchedule::PeriodSchedule(double period_ms, double jitter, uint64_t seed)
    : period_ms_(period_ms),
      jitter_(std::isfinite(jitter) ? std::clamp(jitter, 0.0, kMaxJitter) : 0.0),
      rng_(seed != 0 ? seed : process_seed(this)) {}

double PeriodSchedule::next_ms() {
  if (jitter_ == 0) return period_ms_;
  std::uniform_real_distribution<double> u(-jitter_, jitter_);
  return period_ms_ * (1.0 + u(rng_));
}

}  // namespace adascale
