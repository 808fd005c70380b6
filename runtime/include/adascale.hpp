// Thin C++ wrapper over adascale.h: RAII handles, std::string names, exceptions only on this side.
// Model is shared (const) by any number of Sessions, one per thread; Runtime is the single handle.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "adascale.h"

namespace adascale {

class Error : public std::runtime_error {
 public:
  Error(adascale_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  adascale_status status() const { return status_; }

 private:
  adascale_status status_;
};

// Names of a model's branches in catalog order.
inline std::vector<std::string> branch_names_of(const adascale_model* model) {
  size_t count = 0;
  adascale_model_branch_count(model, &count);
  std::vector<std::string> names;
  for (size_t i = 0; i < count; ++i) {
    adascale_branch_info info;
    adascale_model_branch_info_at(model, i, &info);
    names.emplace_back(info.name);
  }
  return names;
}

// The bundle and the weights its sessions share. Thread-safe; it may go before its Sessions
// (they keep the model alive), see docs/c-api.md.
class Model {
 public:
  explicit Model(const std::string& bundle_path,
                 adascale_backend backend = ADASCALE_BACKEND_XNNPACK, int threads = 1) {
    const adascale_status status =
        adascale_model_open(bundle_path.c_str(), backend, threads, &model_);
    if (status != ADASCALE_OK) throw Error(status, adascale_model_open_error());
  }
  ~Model() { adascale_model_free(model_); }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  std::vector<std::string> branch_names() const { return branch_names_of(model_); }
  size_t class_count() const {
    size_t count = 0;
    adascale_model_class_count(model_, &count);
    return count;
  }
  adascale_model_cache cache_info() const {
    adascale_model_cache cache{};
    adascale_model_cache_info(model_, &cache);
    return cache;
  }
  // Sessions only read the model, so a const Model hands it out.
  adascale_model* get() const { return model_; }

 private:
  adascale_model* model_ = nullptr;
};

// One thread's arenas, selected branch and adaptation loop over a Model.
class Session {
 public:
  explicit Session(const Model& model) {
    const adascale_status status = adascale_session_new(model.get(), &session_);
    if (status != ADASCALE_OK) throw Error(status, "cannot create a session");
  }
  ~Session() { adascale_session_free(session_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void set_memory_budget(size_t bytes) {
    check(adascale_session_set_memory_budget(session_, bytes));
  }
  void select(const std::string& name) { check(adascale_session_select(session_, name.c_str())); }
  // Runs a whole number of NCHW images; returns images x classes logits.
  std::vector<float> run(const std::vector<float>& input) {
    const adascale_model* model = adascale_session_model(session_);
    int64_t dims[4] = {0, 0, 0, 0};
    size_t classes = 0;
    adascale_model_input_shape(model, dims);
    adascale_model_class_count(model, &classes);
    const size_t image = static_cast<size_t>(dims[1] * dims[2] * dims[3]);
    std::vector<float> logits(image ? input.size() / image * classes : 0);
    check(adascale_session_run(session_, input.data(), input.size(), logits.data(), logits.size()));
    return logits;
  }
  // Device profile (adascale.h): measure and use one, or use one measured before ("": the
  // default path for calibrate; for use_device_profile, the catalog's latencies again).
  void calibrate(int runs = 0, int rounds = 0, const std::string& path = "") {
    check(
        adascale_session_calibrate(session_, runs, rounds, path.empty() ? nullptr : path.c_str()));
  }
  void use_device_profile(const std::string& path) {
    check(adascale_session_use_device_profile(session_, path.empty() ? nullptr : path.c_str()));
  }
  std::string latency_source() const { return adascale_session_latency_source(session_); }
  adascale_session* get() { return session_; }

 private:
  void check(adascale_status status) const {
    if (status != ADASCALE_OK) throw Error(status, adascale_session_last_error(session_));
  }
  adascale_session* session_ = nullptr;
};

class Runtime {
 public:
  explicit Runtime(const std::string& bundle_path,
                   adascale_backend backend = ADASCALE_BACKEND_XNNPACK, int threads = 1) {
    char message[512] = {0};
    const adascale_status status =
        adascale_open_ex(bundle_path.c_str(), backend, threads, &handle_, message, sizeof(message));
    if (status != ADASCALE_OK) throw Error(status, message);
  }
  ~Runtime() { adascale_close(handle_); }
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  std::vector<std::string> branch_names() const {
    size_t count = 0;
    adascale_branch_count(handle_, &count);
    std::vector<std::string> names;
    for (size_t i = 0; i < count; ++i) {
      adascale_branch_info info;
      adascale_branch_info_at(handle_, i, &info);
      names.emplace_back(info.name);
    }
    return names;
  }
  void set_memory_budget(size_t bytes) { check(adascale_set_memory_budget(handle_, bytes)); }
  void select(const std::string& name) { check(adascale_select(handle_, name.c_str())); }
  // Runs a whole number of NCHW images; returns images x classes logits.
  std::vector<float> run(const std::vector<float>& input, size_t logits_per_image) {
    int64_t dims[4];
    adascale_input_shape(handle_, dims);
    const size_t image = static_cast<size_t>(dims[1] * dims[2] * dims[3]);
    std::vector<float> logits(image ? input.size() / image * logits_per_image : 0);
    check(adascale_run(handle_, input.data(), input.size(), logits.data(), logits.size()));
    return logits;
  }
  void calibrate(int runs = 0, int rounds = 0, const std::string& path = "") {
    check(adascale_calibrate(handle_, runs, rounds, path.empty() ? nullptr : path.c_str()));
  }
  void use_device_profile(const std::string& path) {
    check(adascale_use_device_profile(handle_, path.empty() ? nullptr : path.c_str()));
  }
  std::string latency_source() const { return adascale_latency_source(handle_); }
  adascale_runtime* handle() { return handle_; }

 private:
  void check(adascale_status status) const {
    if (status != ADASCALE_OK) throw Error(status, adascale_last_error(handle_));
  }
  adascale_runtime* handle_ = nullptr;
};

}  // namespace adascale
