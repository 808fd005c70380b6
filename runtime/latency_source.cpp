#include "runtime/latency_source.h"

#include "runtime/c_api_guard.h"

namespace adascale {
namespace {

std::vector<BranchCosts> catalog_costs(const adascale_model* model) {
  std::vector<BranchCosts> branches;
  size_t count = 0;
  adascale_model_branch_count(model, &count);
  for (size_t i = 0; i < count; ++i) {
    adascale_branch_info info;
    adascale_model_branch_info_at(model, i, &info);
    BranchCosts costs;
    if (!parse_branch_costs(info.name, info.costs_json, &costs).ok()) {
      costs = BranchCosts{};
      costs.name = info.name;
    }
    branches.push_back(std::move(costs));
  }
  return branches;
}

}  // namespace

ProfileTarget profile_target(const adascale_model* model, const ModelSetup& setup) {
  ProfileTarget target;
  size_t count = 0;
  adascale_model_branch_count(model, &count);
  for (size_t i = 0; i < count; ++i) {
    adascale_branch_info info;
    adascale_model_branch_info_at(model, i, &info);
    target.branches.push_back(info.name);
  }
  target.threads = setup.threads;
  target.backend = setup.backend;
  target.cpu = describe_cpu();
  return target;
}

LatencySource profile_latency_source(std::shared_ptr<const DeviceLatencyProfile> profile,
                                     const std::string& path) {
  LatencySource source;
  source.text = "device profile " + path + " (" + profile->cpu + ", " +
                std::to_string(profile->threads) + " thread" + (profile->threads > 1 ? "s" : "") +
                ", " + profile->backend + ")";
  source.profile = std::move(profile);
  source.path = path;
  return source;
}

LatencySource catalog_latency_source(const adascale_model* model, const std::string& refused_path,
                                     const std::string& refused) {
  LatencySource source;
  std::string host;
  for (const BranchCosts& c : catalog_costs(model))
    if (c.latency_device) {
      host = *c.latency_device;
      break;
    }
  source.text =
      host.empty() ? "catalog (export host not recorded)" : "catalog (export host: " + host + ")";
  if (!refused.empty()) {
    source.path = refused_path;
    source.refused = refused;
    source.text += "; device profile " + refused_path + " not used: " + refused;
  }
  return source;
}

Status load_latency_source(const adascale_model* model, const ModelSetup& setup,
                           const std::string& path, LatencySource* out) {
  auto profile = std::make_shared<DeviceLatencyProfile>();
  Status s = read_device_profile(path, profile.get());
  if (!s.ok()) return s;
  s = check_device_profile(*profile, profile_target(model, setup));
  if (!s.ok()) return error_status(s.code, path + ": " + s.message);
  *out = profile_latency_source(std::move(profile), path);
  return ok_status();
}

LatencySource default_latency_source(const adascale_model* model, const ModelSetup& setup) {
  const std::string path = default_device_profile_path(setup.bundle_path);
  LatencySource source;
  const Status s = load_latency_source(model, setup, path, &source);
  if (s.ok()) return source;
  // no profile is the usual case and not worth a note; an unusable one is named
  if (s.code == ErrorCode::kNotFound) return catalog_latency_source(model, "", "");
  const std::string prefix = path + ": ";
  const std::string reason = s.message.compare(0, prefix.size(), prefix) == 0
                                 ? s.message.substr(prefix.size())
                                 : s.message;
  return catalog_latency_source(model, path, reason);
}

std::vector<BranchCosts> loop_branch_costs(const adascale_session* session) {
  std::vector<BranchCosts> branches = catalog_costs(adascale_session_model(session));
  const LatencySource& source = latency_source_of(session);
  if (source.profile) apply_device_profile(*source.profile, &branches);
  return branches;
}

std::vector<BranchCosts> loop_branch_costs(const adascale_runtime* handle) {
  return loop_branch_costs(session_of(handle));
}

}  // namespace adascale
