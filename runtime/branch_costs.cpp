#include "runtime/branch_costs.h"

#include <cmath>
#include <limits>

#include "runtime/catalog_json.h"

namespace adascale {

namespace {

using catalog_json::CatalogError;
using nlohmann::json;

constexpr double kNoMax = std::numeric_limits<double>::infinity();
// Largest count written as a JSON integer: every integer up to 2^53 is exact in a double.
constexpr double kMaxExactInteger = 9007199254740992.0;

// A finite number in [0, max]; nlohmann reads integers and floats alike as double here.
double get_number(const json& v, const std::string& key, double max = kNoMax) {
  if (!v.is_number()) throw CatalogError("costs." + key + " must be a number, got " + v.dump());
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < 0 || d > max)
    throw CatalogError(
        "costs." + key + " must be " +
        (max == kNoMax ? std::string("a finite number >= 0") : "in [0, " + json(max).dump() + "]") +
        ", got " + v.dump());
  return d;
}

// `label`: the key's path in the costs object, for the message
std::optional<double> optional_number(const json& j, const char* key, double max = kNoMax,
                                      const std::string& label = "") {
  const auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  return get_number(*it, label.empty() ? key : label, max);
}

std::optional<std::string> optional_string(const json& j, const char* key, const char* label) {
  const auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  return catalog_json::get_name(*it, std::string("costs.") + label);
}

void put_count(json& j, const char* key, const std::optional<double>& value) {
  if (!value) return;
  if (*value == std::floor(*value) && *value >= 0 && *value <= kMaxExactInteger)
    j[key] = static_cast<uint64_t>(*value);
  else
    j[key] = *value;
}

void put_number(json& j, const char* key, const std::optional<double>& value) {
  if (value) j[key] = *value;
}

}  // namespace

void to_json(json& j, const BranchCosts& c) {
  j = json::object();
  put_count(j, "macs", c.macs);
  put_count(j, "params", c.params);
  put_count(j, "weight_bytes", c.weight_bytes);
  put_count(j, "activation_bytes", c.activation_bytes);
  put_count(j, "peak_memory_bytes", c.memory_bytes);
  put_count(j, "memory_access_bytes", c.memory_access_bytes);
  json latency = json::object();
  put_number(latency, "median", c.latency_median_ms);
  put_number(latency, "p90", c.latency_p90_ms);
  put_count(latency, "batch", c.latency_batch);
  if (c.latency_device) latency["device"] = *c.latency_device;
  if (!latency.empty()) j["latency_ms"] = latency;
  if (!c.latency_by_threads.empty()) {
    json by = json::array();
    for (const ThreadLatency& t : c.latency_by_threads)
      by.push_back({{"threads", t.threads}, {"median", t.median_ms}, {"p90", t.p90_ms}});
    j["latency_by_threads"] = by;
  }
  put_number(j, "prepare_ms", c.prepare_ms);
  put_number(j, "libtorch_eager_latency_ms", c.libtorch_eager_latency_ms);
  put_number(j, "energy_mj", c.energy_mj);
  if (c.energy_model) j["energy_model"] = *c.energy_model;
  j["precision"] = c.int8 ? "int8" : "fp32";
  put_number(j, "accuracy", c.accuracy);
  put_count(j, "accuracy_images", c.accuracy_images);
  put_number(j, "parity_max_logit_diff", c.parity_max_logit_diff);
  put_number(j, "parity_top1_agreement", c.parity_top1_agreement);
  if (c.pareto) j["pareto"] = *c.pareto;
}

void from_json(const json& j, BranchCosts& c) {
  if (!j.is_object()) throw CatalogError("costs must be an object");
  BranchCosts out;
  out.name = c.name;
  out.macs = optional_number(j, "macs");
  out.params = optional_number(j, "params");
  out.weight_bytes = optional_number(j, "weight_bytes");
  out.activation_bytes = optional_number(j, "activation_bytes");
  out.memory_bytes = optional_number(j, "peak_memory_bytes");
  if (!out.memory_bytes && (out.weight_bytes || out.activation_bytes))
    out.memory_bytes = out.weight_bytes.value_or(0) + out.activation_bytes.value_or(0);
  out.memory_access_bytes = optional_number(j, "memory_access_bytes");

  const auto latency = j.find("latency_ms");
  if (latency != j.end()) {
    if (latency->is_object()) {
      out.latency_median_ms = optional_number(*latency, "median", kNoMax, "latency_ms.median");
      out.latency_p90_ms = optional_number(*latency, "p90", kNoMax, "latency_ms.p90");
      out.latency_batch = optional_number(*latency, "batch", kNoMax, "latency_ms.batch");
      if (out.latency_batch && *out.latency_batch < 1)
        throw CatalogError("costs.latency_ms.batch must be >= 1");
      out.latency_device = optional_string(*latency, "device", "latency_ms.device");
    } else {
      out.latency_median_ms = get_number(*latency, "latency_ms");
    }
  }
  // zero latency is a missing measurement, not an infinitely fast branch
  if (out.latency_median_ms && *out.latency_median_ms <= 0) out.latency_median_ms.reset();

  const auto by_threads = j.find("latency_by_threads");
  if (by_threads != j.end()) {
    if (!by_threads->is_array()) throw CatalogError("costs.latency_by_threads must be an array");
    if (by_threads->size() > kMaxThreadLatencies)
      throw CatalogError("costs.latency_by_threads has more than " +
                         std::to_string(kMaxThreadLatencies) + " entries");
    for (size_t i = 0; i < by_threads->size(); ++i) {
      const json& e = (*by_threads)[i];
      const std::string at = "latency_by_threads[" + std::to_string(i) + "]";
      if (!e.is_object()) throw CatalogError("costs." + at + " must be an object");
      const auto threads = e.find("threads");
      if (threads == e.end()) throw CatalogError("costs." + at + ".threads is missing");
      const double t = get_number(*threads, at + ".threads", kMaxLatencyThreads);
      if (t < 2 || t != std::floor(t))
        throw CatalogError("costs." + at + ".threads must be an integer in [2, " +
                           std::to_string(kMaxLatencyThreads) + "], got " + threads->dump());
      ThreadLatency entry;
      entry.threads = static_cast<int>(t);
      if (!out.latency_by_threads.empty() && entry.threads <= out.latency_by_threads.back().threads)
        throw CatalogError("costs." + at + ".threads must be larger than the entry before");
      const auto median = optional_number(e, "median", kNoMax, at + ".median");
      if (!median || !(*median > 0)) throw CatalogError("costs." + at + ".median must be > 0");
      entry.median_ms = *median;
      entry.p90_ms = optional_number(e, "p90", kNoMax, at + ".p90").value_or(*median);
      out.latency_by_threads.push_back(entry);
    }
  }

  out.prepare_ms = optional_number(j, "prepare_ms");
  out.libtorch_eager_latency_ms = optional_number(j, "libtorch_eager_latency_ms");
  out.energy_mj = optional_number(j, "energy_mj");
  out.energy_model = optional_string(j, "energy_model", "energy_model");
  if (const auto precision = optional_string(j, "precision", "precision")) {
    if (*precision == "int8" || *precision == "i8")
      out.int8 = true;
    else if (*precision != "fp32" && *precision != "f32")
      throw CatalogError("costs.precision must be \"fp32\" or \"int8\", got \"" + *precision +
                         "\"");
  }
  // a fraction: a percentage (91 for 91%) is refused rather than read as 91 times better
  out.accuracy = optional_number(j, "accuracy", 1.0);
  out.accuracy_images = optional_number(j, "accuracy_images");
  out.parity_max_logit_diff = optional_number(j, "parity_max_logit_diff");
  out.parity_top1_agreement = optional_number(j, "parity_top1_agreement", 1.0);
  const auto pareto = j.find("pareto");
  if (pareto != j.end()) {
    if (!pareto->is_boolean()) throw CatalogError("costs.pareto must be true or false");
    out.pareto = pareto->get<bool>();
  }
  c = std::move(out);
}

Status parse_branch_costs(const std::string& name, const std::string& costs_json,
                          BranchCosts* costs) {
  *costs = BranchCosts{};
  costs->name = name;
  const std::string where = "costs of branch '" + name + "': ";
  if (costs_json.size() > catalog_json::kMaxCatalogBytes)
    return error_status(ErrorCode::kFormat, where + "longer than the catalog limit");
  bool too_deep = false;
  const json j = catalog_json::parse_bounded(costs_json, catalog_json::kMaxCatalogDepth, &too_deep);
  if (too_deep) return error_status(ErrorCode::kFormat, where + "nested too deeply");
  if (j.is_discarded() || !j.is_object())
    return error_status(ErrorCode::kFormat, where + "not a JSON object");
  try {
    from_json(j, *costs);
  } catch (const CatalogError& e) {
    return error_status(ErrorCode::kFormat, where + e.what());
  }
  return ok_status();
}

}  // namespace adascale
