// Internal to the scenario replayer (scenario_run.h): the trace picture of one policy's run
// (latency against the budget, the branch over time, rolling accuracy; contention phases shaded,
// events marked).
#pragma once

#include <string>
#include <vector>

#include "tools/scenario/trace_rows.h"

namespace adascale::scenario {

std::string trace_svg(const PolicyRun& run, const std::vector<TraceRow>& rows,
                      const PolicySummary& sum, const Scenario& s, const Workload& w);

}  // namespace adascale::scenario
