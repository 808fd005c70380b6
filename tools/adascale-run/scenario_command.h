// --scenario: loads the scenario and the labelled IDX images, resolves budgets relative to the
// bundle's latencies, replays the scenario once per policy (tools/scenario/scenario_run.h) and
// prints the summary table and the trace files. --generate-scenario writes a random one.
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

struct GenerateRequest {
  uint32_t seed = 0;
  std::string out;  // empty: standard output
};
// --generate-scenario: a random scenario (tools/scenario/scenario_generator.h) with requests
// sized for the bundle and burners for this machine's cores. Throws Failure.
void generate_scenario(const GenerateRequest& request, Runtime& rt);

}  // namespace adascale::run_cli
