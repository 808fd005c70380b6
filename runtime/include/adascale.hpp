// Thin C++ wrapper over adascale.h: RAII handle, std::string names, exceptions only on this side.
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
  adascale_runtime* handle() { return handle_; }

 private:
  void check(adascale_status status) const {
    if (status != ADASCALE_OK) throw Error(status, adascale_last_error(handle_));
  }
  adascale_runtime* handle_ = nullptr;
};

}  // namespace adascale
