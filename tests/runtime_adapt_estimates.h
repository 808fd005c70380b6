// Branch estimates and budgets as the selector tests build them: every cost known.
#pragma once

#include "runtime/adapt/selector.h"

namespace adascale::testing {

inline BranchEstimate estimate(double latency_ms, double accuracy, double memory = 100,
                               double energy_mj = 1) {
  BranchEstimate e;
  e.latency_ms = e.latency_uncorrected_ms = latency_ms;
  e.latency_known = true;
  e.tail_own = true;  // the spread of its own observations, as where it has run long enough
  e.accuracy = accuracy;
  e.accuracy_known = true;
  e.memory_bytes = memory;
  e.memory_known = true;
  e.energy_mj = energy_mj;
  e.energy_known = true;
  return e;
}

inline Budgets latency_budget(double ms) {
  Budgets b;
  b.latency_ms = ms;
  return b;
}

}  // namespace adascale::testing
