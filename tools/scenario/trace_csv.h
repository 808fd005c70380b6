// Internal to the scenario replayer (scenario_run.h): the trace CSV, one row per request (columns
// in docs/scenarios.md).
#pragma once

#include <string>
#include <vector>

#include "tools/scenario/trace_rows.h"

namespace adascale::scenario {

std::string trace_csv(const std::vector<TraceRow>& rows, const Scenario& s, const Workload& w);

}  // namespace adascale::scenario
