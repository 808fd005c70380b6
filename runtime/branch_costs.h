// BranchCosts: the schema of a catalog branch's "costs" object (catalog.json branches[].costs),
// defined once: the exporter writes it with to_json, the bundle reader validates it with
// from_json and the adaptation loop's profiler reads it with parse_branch_costs.
//
// Every key is optional (a missing one is "not measured"). Keys this version does not know are
// ignored, so a newer exporter's extra measurements do not make a bundle unreadable; a known key
// with the wrong type, a non-finite or negative number, or a value out of its range is an error.
//
//   key                        member                      unit, range
//   macs                       macs                        multiply-adds of one inference, >= 0
//   params                     params                      parameters, >= 0
//   weight_bytes               weight_bytes                bytes, >= 0
//   activation_bytes           activation_bytes            activation arena, bytes, >= 0
//   peak_memory_bytes          memory_bytes                bytes, >= 0 (read: else weight_bytes
//                                                          + activation_bytes when either is set)
//   memory_access_bytes        memory_access_bytes         bytes moved per inference, >= 0
//   latency_ms                 {"median", "p90": ms >= 0 (a median of 0 is "not measured"),
//                               "batch": >= 1, "device": string}; a plain number is the median
//   latency_by_threads         latency_by_threads          [{"threads": 2..1024, "median": ms > 0,
//                                                          "p90": ms >= 0}, ...]: the batch-1
//                                                          latency on more threads (latency_ms is
//                                                          one thread's), threads increasing, at
//                                                          most kMaxThreadLatencies entries
//   prepare_ms                 prepare_ms                  ms, >= 0
//   libtorch_eager_latency_ms  libtorch_eager_latency_ms   ms, >= 0
//   energy_mj                  energy_mj                   mJ per inference, >= 0
//   energy_model               energy_model                string
//   precision                  int8                        "fp32" (or "f32"), "int8" (or "i8")
//   accuracy                   accuracy                    held-out top-1 accuracy as a FRACTION
//                                                          in [0, 1] (0.91, not 91)
//   accuracy_images            accuracy_images             images it was measured on, >= 0
//   parity_max_logit_diff      parity_max_logit_diff       >= 0
//   parity_top1_agreement      parity_top1_agreement       fraction in [0, 1]
//   pareto                     pareto                      bool
//
// Strings are bounded like every catalog name (catalog_json::kMaxNameBytes).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runtime/graph.h"

namespace adascale {

constexpr size_t kMaxThreadLatencies = 64;
constexpr int kMaxLatencyThreads = 1024;

struct ThreadLatency {
  int threads = 2;
  double median_ms = 0, p90_ms = 0;
};

struct BranchCosts {
  std::string name;  // the branch's name (not part of the object)
  // Threads the adaptation loop runs this entry on (not part of the object): 0 is the session's
  // own count; the loop's thread variants of a branch set it (adapt/adaptation_loop.h).
  int threads = 0;
  std::optional<double> macs, params;
  std::optional<double> weight_bytes, activation_bytes;
  std::optional<double> memory_bytes;  // peak memory: weights + activation arena
  std::optional<double> memory_access_bytes;
  std::optional<double> latency_median_ms, latency_p90_ms;  // batch-1, on latency_device
  std::optional<double> latency_batch;
  std::optional<std::string> latency_device;
  std::vector<ThreadLatency> latency_by_threads;
  std::optional<double> prepare_ms;
  std::optional<double> libtorch_eager_latency_ms;
  std::optional<double> energy_mj;
  std::optional<std::string> energy_model;
  bool int8 = false;               // precision int8 (cheaper MACs); false: fp32
  std::optional<double> accuracy;  // fraction in [0, 1]
  std::optional<double> accuracy_images;
  std::optional<double> parity_max_logit_diff;
  std::optional<double> parity_top1_agreement;  // fraction in [0, 1]
  std::optional<bool> pareto;
};

// nlohmann-json hooks (json j = costs; j.get<BranchCosts>()). to_json writes the set members
// (precision always) and counts as integers; from_json validates as described above, leaves the
// name as it was and throws catalog_json::CatalogError naming the key.
void to_json(nlohmann::json& j, const BranchCosts& costs);
void from_json(const nlohmann::json& j, BranchCosts& costs);

// The text form (Branch::costs_json, adascale_branch_info::costs_json): *costs is the parsed
// object with `name` set; a kFormat status naming the branch when the text is not a valid costs
// object (depth and size bounded like the catalog).
Status parse_branch_costs(const std::string& name, const std::string& costs_json,
                          BranchCosts* costs);

}  // namespace adascale
