// Internal to the scenario replayer (scenario_run.h): one row per request of a policy's run, joined
// with the load, budgets and loop context in force when it started; what the summary, the CSV
// and the SVG are made of.
#pragma once

#include <vector>

#include "tools/scenario/replay.h"

namespace adascale::scenario {

struct TraceRow {
  const Frame* frame;
  const StateChange* state;
  const ContextRow* context;  // may be null
  double budget_ms, memory_limit_mib, energy_mj, predicted_ms, predicted_tail_ms,
      predicted_uncorrected_ms;
  bool violation, memory_violation;
};

std::vector<TraceRow> join_trace(const PolicyRun& run, const Scenario& s, const Workload& w);

}  // namespace adascale::scenario
