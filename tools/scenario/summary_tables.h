// Internal to the scenario replayer (scenario_run.h): a policy's summary (violations, accuracy,
// switches, the adaptive policy's reaction to each contention step). format_summary and
// classify_step, declared in scenario_run.h, live next to it.
#pragma once

#include <vector>

#include "tools/scenario/trace_rows.h"

namespace adascale::scenario {

PolicySummary summarize(const PolicyRun& run, const std::vector<TraceRow>& rows, const Scenario& s,
                        const Workload& w);

}  // namespace adascale::scenario
