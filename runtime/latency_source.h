// Which latencies a session's adaptation loop predicts from: the device profile
// (runtime/device_profile.h) that matches it, else the catalog's, measured on the export host.
// Used by the C API (c_api.cpp, c_api_profile.cpp, adapt/c_api_adapt.cpp) and by tools that
// drive an AdaptationLoop themselves (the scenario replay), so that both predict alike.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "adascale.h"
#include "runtime/branch_costs.h"
#include "runtime/device_profile.h"

namespace adascale {

// How a model was opened: what a device profile must match.
struct ModelSetup {
  std::string bundle_path;
  std::string backend;  // "xnnpack", "xnnpack-plain" or "reference"
  int threads = 1;
};

struct LatencySource {
  std::shared_ptr<const DeviceLatencyProfile> profile;  // null: the catalog's latencies
  std::string path;                                     // the profile used, or the one refused
  std::string refused;  // why the profile at `path` is not used; empty when none was refused
  std::string text;     // what adascale_latency_source says
};

// What a profile of this model must match (ProfileTarget), from the model's branches.
ProfileTarget profile_target(const adascale_model* model, const ModelSetup& setup);
// A model's default: the profile at <bundle>/device-profile.json when it is there and matches,
// else the catalog (a profile there that cannot be used is named in the text with the reason).
LatencySource default_latency_source(const adascale_model* model, const ModelSetup& setup);
// The profile at `path`, checked against the model; a status naming the culprit otherwise.
Status load_latency_source(const adascale_model* model, const ModelSetup& setup,
                           const std::string& path, LatencySource* out);
// The source that uses `profile` (already checked), stored at `path`.
LatencySource profile_latency_source(std::shared_ptr<const DeviceLatencyProfile> profile,
                                     const std::string& path);
// The catalog's source, with the export host named (and a refused profile, when given).
LatencySource catalog_latency_source(const adascale_model* model, const std::string& refused_path,
                                     const std::string& refused);

// The catalog costs of the session's branches (costs that do not parse: empty, so that the
// selector treats them as unknown) with the latencies of the session's source: what its
// adaptation loop is built from.
std::vector<BranchCosts> loop_branch_costs(const adascale_session* session);
std::vector<BranchCosts> loop_branch_costs(const adascale_runtime* handle);

}  // namespace adascale
