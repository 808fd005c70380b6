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
  // Two apps (tools/scenario/app_link.h): the second app's bundle (this process starts it), or,
  // in that second app, the link's descriptors "R,W".
  std::string second_bundle, app_link;
  // passed on to the second app: --backend, --threads, and --device-profile none (a device
  // profile file belongs to one bundle: the second app uses its own bundle's, if any)
  std::string backend;
  adascale_backend backend_kind = ADASCALE_BACKEND_XNNPACK;
  int threads = 1;
  bool no_device_profile = false;
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
