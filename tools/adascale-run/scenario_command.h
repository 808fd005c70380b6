// --scenario: loads the scenario and the labelled IDX images, replays the scenario once per
// policy (tools/scenario/scenario_run.h) and prints the summary table and the trace files.
#pragma once

#include <cstdint>
#include <string>

#include "tools/adascale-run/runtime_handle.h"

namespace adascale::run_cli {

struct ScenarioRequest {
  std::string scenario_path, policies, trace_dir;  // trace_dir empty: no trace files
  std::string idx_images, idx_labels;
  int64_t limit = -1;  // images read; <= 0: all
};

// Returns the exit status: 0, or 130 when interrupted (SIGINT/SIGTERM). Throws Failure.
int run_scenario(const ScenarioRequest& request, Runtime& rt);

}  // namespace adascale::run_cli
