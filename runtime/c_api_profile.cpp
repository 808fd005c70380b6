// C API of on-device calibration (the "Device profile" section of adascale.h): measuring every
// branch on this device, writing the profile, choosing the latencies the adaptation loop predicts
// from and saying which.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "adascale.h"
#include "base/statistics.h"
#include "runtime/backend.h"
#include "runtime/c_api_guard.h"
#include "runtime/latency_source.h"

namespace {

using adascale::ErrorCode;
using adascale::Status;

constexpr int kMaxCalibrationRuns = 1000000;

adascale_status fail(adascale_session* s, const Status& status) {
  if (std::string* error = adascale::last_error_slot(s)) *error = status.message;
  return static_cast<adascale_status>(status.code);
}

adascale_status fail(adascale_session* s, adascale_status code, const std::string& message) {
  return fail(s, adascale::error_status(static_cast<ErrorCode>(code), message));
}

// what ran a branch's convolutions, recorded with its latency (int8 ones depend on the CPU)
std::string branch_kernel(const std::string& backend, bool int8) {
  if (backend == "reference") return "reference";
  return int8 && backend == "xnnpack" ? adascale::int8_conv_kernel() : "xnnpack";
}

struct SessionDeleter {
  void operator()(adascale_session* s) const { adascale_session_free(s); }
};

// Times every branch of the session's model on a session of its own, so that the caller's
// selection and cached branches stay as they are (the weights are shared with the model).
Status measure(adascale_session* caller, const adascale::CalibrationOptions& options,
               adascale::DeviceLatencyProfile* out) {
  adascale_model* model = adascale_session_model(caller);
  const adascale::ModelSetup& setup = adascale::model_setup(model);
  adascale_session* raw = nullptr;
  if (adascale_session_new(model, &raw) != ADASCALE_OK)
    return adascale::error_status(ErrorCode::kOutOfMemory, "cannot create a session to calibrate");
  const std::unique_ptr<adascale_session, SessionDeleter> session(raw);
  // every branch stays prepared, so that switching between rounds is not what gets timed
  adascale_session_set_memory_budget(raw, SIZE_MAX);
  const std::vector<adascale::BranchCosts> costs = adascale::loop_branch_costs(caller);
  int64_t dims[4];
  adascale_model_input_shape(model, dims);
  size_t classes = 0;
  adascale_model_class_count(model, &classes);
  const size_t batch = static_cast<size_t>(dims[0] > 0 ? dims[0] : 1);
  // values in the range of real pixels: zeros could take shortcuts real inputs do not
  std::vector<float> input(batch * static_cast<size_t>(dims[1] * dims[2] * dims[3]));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  for (float& v : input) v = pixel(rng);
  std::vector<float> logits(batch * std::max<size_t>(classes, 1));
  auto check = [&](adascale_status status) {
    return status == ADASCALE_OK ? adascale::ok_status()
                                 : adascale::error_status(static_cast<ErrorCode>(status),
                                                          adascale_session_last_error(raw));
  };
  // every branch on every thread count from 1 to the session's, (branch, threads) in turn
  const size_t counts = static_cast<size_t>(std::max(1, setup.threads));
  std::vector<std::vector<double>> samples;
  Status s = adascale::time_branches_interleaved(
      costs.size() * counts, options,
      [&](size_t k) {
        Status selected = check(adascale_session_select(raw, costs[k / counts].name.c_str()));
        if (!selected.ok()) return selected;
        return check(adascale_session_set_threads(raw, static_cast<int>(k % counts) + 1));
      },
      [&] {
        return check(
            adascale_session_run(raw, input.data(), input.size(), logits.data(), logits.size()));
      },
      &samples);
  if (!s.ok()) return s;
  out->schema_version = adascale::kDeviceProfileSchemaVersion;
  out->cpu = adascale::describe_cpu();
  out->threads = setup.threads;
  out->backend = setup.backend;
  out->batch = static_cast<int64_t>(batch);
  out->rounds = std::min(std::max<int64_t>(options.rounds, 1), options.runs);
  out->branches.clear();
  for (size_t b = 0; b < costs.size(); ++b) {
    adascale::BranchLatency latency;
    latency.name = costs[b].name;
    // a clock too coarse for a tiny branch reads 0: the profile needs a latency > 0
    auto median_p90 = [&](size_t k) {
      const double median = std::max(adascale::base::percentile(samples[k], 0.5), 1e-6);
      return std::make_pair(median, std::max(adascale::base::percentile(samples[k], 0.9), median));
    };
    std::tie(latency.median_ms, latency.p90_ms) = median_p90(b * counts);
    for (size_t t = 1; t < counts; ++t) {
      const auto [median, p90] = median_p90(b * counts + t);
      latency.by_threads.push_back({static_cast<int>(t) + 1, median, p90});
    }
    latency.kernel = branch_kernel(setup.backend, costs[b].int8);
    latency.runs = static_cast<int64_t>(samples[b * counts].size());
    out->branches.push_back(std::move(latency));
  }
  return adascale::ok_status();
}

// Makes the session predict from `source`; the loop (when it has one) is built again.
adascale_status switch_source(adascale_session* s, adascale::LatencySource source) {
  adascale::latency_source_slot(s) = std::move(source);
  adascale::rebuild_adapt_loop(s);
  return ADASCALE_OK;
}

const char* kStopFirst = "stop the adaptation loop before changing the latencies it predicts from";

}  // namespace

extern "C" {

adascale_status adascale_session_calibrate(adascale_session* session, int runs, int rounds,
                                           const char* path) {
  if (!session) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (adascale::in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  if (runs < 0 || runs > kMaxCalibrationRuns || rounds < 0 || (runs > 0 && rounds > runs))
    return fail(session, ADASCALE_ERROR_INVALID_ARGUMENT,
                "calibration needs runs in [1, " + std::to_string(kMaxCalibrationRuns) +
                    "] and rounds in [1, runs] (0: the defaults)");
  if (path && !*path) return fail(session, ADASCALE_ERROR_INVALID_ARGUMENT, "empty profile path");
  return adascale::guarded(adascale::last_error_slot(session), [&]() -> adascale_status {
    // the loop's thread would share the CPU with the measurement
    if (adascale::adapt_loop_running(session))
      return fail(session, ADASCALE_ERROR_UNSUPPORTED,
                  "stop the adaptation loop before calibrating");
    adascale::CalibrationOptions options;
    if (runs > 0) options.runs = runs;
    if (rounds > 0) options.rounds = rounds;
    options.rounds = std::min(options.rounds, options.runs);
    auto profile = std::make_shared<adascale::DeviceLatencyProfile>();
    Status s = measure(session, options, profile.get());
    if (!s.ok()) return fail(session, s);
    const adascale::ModelSetup& setup = adascale::model_setup(adascale_session_model(session));
    const std::string out = path ? path : adascale::default_device_profile_path(setup.bundle_path);
    s = adascale::write_device_profile(out, *profile);
    if (!s.ok()) return fail(session, s);
    return switch_source(session, adascale::profile_latency_source(std::move(profile), out));
  });
}

adascale_status adascale_session_use_device_profile(adascale_session* session, const char* path) {
  if (!session) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (adascale::in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  if (path && !*path) return fail(session, ADASCALE_ERROR_INVALID_ARGUMENT, "empty profile path");
  return adascale::guarded(adascale::last_error_slot(session), [&]() -> adascale_status {
    if (adascale::adapt_loop_running(session))
      return fail(session, ADASCALE_ERROR_UNSUPPORTED, kStopFirst);
    const adascale_model* model = adascale_session_model(session);
    if (!path) return switch_source(session, adascale::catalog_latency_source(model, "", ""));
    adascale::LatencySource source;
    const Status s =
        adascale::load_latency_source(model, adascale::model_setup(model), path, &source);
    if (!s.ok()) return fail(session, s);
    return switch_source(session, std::move(source));
  });
}

const char* adascale_session_latency_source(const adascale_session* session) {
  return session ? adascale::latency_source_of(session).text.c_str() : "null session";
}

adascale_status adascale_calibrate(adascale_runtime* handle, int runs, int rounds,
                                   const char* path) {
  return adascale_session_calibrate(adascale::session_of(handle), runs, rounds, path);
}

adascale_status adascale_use_device_profile(adascale_runtime* handle, const char* path) {
  return adascale_session_use_device_profile(adascale::session_of(handle), path);
}

const char* adascale_latency_source(const adascale_runtime* handle) {
  return handle ? adascale_session_latency_source(adascale::session_of(handle)) : "null handle";
}

}  // extern "C"
