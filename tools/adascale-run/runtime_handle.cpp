#include "tools/adascale-run/runtime_handle.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>

#include "tools/adascale-run/failure.h"

namespace adascale::run_cli {
namespace {

constexpr std::pair<const char*, adascale_backend> kBackends[] = {
    {"xnnpack", ADASCALE_BACKEND_XNNPACK},
    {"xnnpack-plain", ADASCALE_BACKEND_XNNPACK_PLAIN},
    {"reference", ADASCALE_BACKEND_REFERENCE}};

constexpr size_t kMaxCatalogBytes = size_t{64} << 20;

}  // namespace

bool parse_backend(const std::string& name, adascale_backend* backend) {
  const auto* known = std::find_if(std::begin(kBackends), std::end(kBackends),
                                   [&](const auto& b) { return name == b.first; });
  if (known == std::end(kBackends)) return false;
  *backend = known->second;
  return true;
}

const char* backend_name(adascale_backend backend) {
  for (const auto& b : kBackends)
    if (b.second == backend) return b.first;
  return "?";
}

Runtime::Runtime(const std::string& bundle, adascale_backend backend, int threads)
    : bundle_(bundle) {
  char message[512] = {0};
  if (adascale_open_ex(bundle.c_str(), backend, threads, &rt_, message, sizeof(message)) !=
      ADASCALE_OK)
    throw Failure("cannot open bundle '" + bundle + "': " + message);
  int64_t dims[4];
  adascale_input_shape(rt_, dims);
  input.channels = dims[1];
  input.height = dims[2];
  input.width = dims[3];
  size_t count = 0;
  adascale_branch_count(rt_, &count);
  for (size_t i = 0; i < count; ++i) {
    adascale_branch_info info;
    adascale_branch_info_at(rt_, i, &info);
    branches.emplace_back(info.name, info.costs_json);
  }
  adascale_class_count(rt_, &classes);
}

Runtime::~Runtime() { adascale_close(rt_); }

void Runtime::check(adascale_status status, const std::string& what) const {
  if (status != ADASCALE_OK) throw Failure(what + ": " + adascale_last_error(rt_));
}

std::vector<std::string> catalog_class_names(const std::string& bundle) {
  // The C API exposes only the class count, so the names come from the catalog itself (already
  // validated by adascale_open_ex).
  const std::string path = (std::filesystem::path(bundle) / "catalog.json").string();
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return {};
  std::string text;
  char buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof(buffer), f)) > 0 && text.size() <= kMaxCatalogBytes)
    text.append(buffer, got);
  std::fclose(f);
  // the runtime's own limit; a catalog that grew past it since the bundle was opened is refused
  if (text.size() > kMaxCatalogBytes)
    throw Failure("'" + path + "' is larger than " + std::to_string(kMaxCatalogBytes) + " bytes");
  const nlohmann::json catalog = nlohmann::json::parse(text, nullptr, false);
  if (!catalog.is_object() || !catalog.contains("classes") || !catalog["classes"].is_array())
    return {};
  std::vector<std::string> names;
  for (const nlohmann::json& name : catalog["classes"])
    if (name.is_string()) names.push_back(name.get<std::string>());
  return names;
}

void check_labels(const Dataset& dataset, size_t classes) {
  if (dataset.labelled() && classes == 0)
    throw Failure("the catalog names no classes, so labels cannot be scored");
  for (int64_t label : dataset.labels)
    if (label < 0 || static_cast<size_t>(label) >= classes)
      throw Failure("label " + std::to_string(label) + " is outside the bundle's " +
                    std::to_string(classes) + " classes");
}

}  // namespace adascale::run_cli
