// PeriodSchedule: the adaptation loop's period, drawn afresh for each step within +-jitter of
// the nominal one.
//
// Two loops on one device that start together with the same period (two apps launched at once,
// or the scenario replayer's two apps) sample the run queue at the same instants, so each one
// catches the other's loop thread at almost every sample and counts it as a competing task: a
// load that is not there, made to look sustained by the lockstep. Drawing each period at random
// lets their phases drift apart after a few steps; a passing loop thread is then caught rarely,
// and seldom twice in a row, which DeviceProfile::sustained_runnable already leaves out.
#pragma once

#include <cstdint>
#include <random>

namespace adascale {

class PeriodSchedule {
 public:
  // jitter: the largest relative change of one period, in [0, kMaxJitter] (0: a fixed period).
  // seed: 0 draws one from the process id and this object's address, so that two processes
  // (or two loops of one process) do not draw the same periods.
  PeriodSchedule(double period_ms, double jitter, uint64_t seed = 0);
  // the time to the next step: period_ms x (1 + u), u uniform in [-jitter, jitter]
  double next_ms();
  double jitter() const { return jitter_; }
  static constexpr double kMaxJitter = 0.5;

 private:
  double period_ms_, jitter_;
  std::mt19937_64 rng_;
};

}  // namespace adascale
