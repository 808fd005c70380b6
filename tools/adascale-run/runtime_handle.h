// The bundle as adascale-run sees it: the C API handle, its input shape, branches and classes,
// and the --backend names.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "adascale.h"
#include "tools/adascale-run/dataset.h"

namespace adascale::run_cli {

// --backend names, parsed and printed from one table; parse returns false for an unknown name.
bool parse_backend(const std::string& name, adascale_backend* backend);
const char* backend_name(adascale_backend backend);

// Owns the C API handle so every exit path closes it. Throws Failure.
class Runtime {
 public:
  Runtime(const std::string& bundle, adascale_backend backend, int threads);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  void check(adascale_status status, const std::string& what) const;
  adascale_runtime* get() { return rt_; }
  const std::string& bundle_path() const { return bundle_; }

  ImageShape input;
  size_t classes = 0;
  std::vector<std::pair<std::string, std::string>> branches;  // name, costs JSON

 private:
  adascale_runtime* rt_ = nullptr;
  std::string bundle_;
};

// The class names of the bundle's catalog (empty when it names none).
std::vector<std::string> catalog_class_names(const std::string& bundle);

// Throws Failure unless every label of `dataset` names one of the bundle's `classes` classes.
void check_labels(const Dataset& dataset, size_t classes);

}  // namespace adascale::run_cli
