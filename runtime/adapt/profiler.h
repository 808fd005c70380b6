// Profiler: predicts each branch's latency, memory and energy in the current context from the
// bundle's catalog costs, and corrects latency online from what the run path observes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "runtime/adapt/context_monitor.h"
#include "runtime/graph.h"

namespace adascale {

// What the catalog says about one branch (branches[].costs in catalog.json). Every field is
// optional: exporters of different versions write different keys.
struct BranchCosts {
  std::string name;
  std::optional<double> latency_median_ms;  // "latency_ms": {"median": x} (or a plain number)
  std::optional<double> latency_p90_ms;     // "latency_ms": {"p90": y}
  std::optional<double>
      memory_bytes;            // "peak_memory_bytes", else "weight_bytes" + "activation_bytes"
  std::optional<double> macs;  // "macs"
  std::optional<double> memory_access_bytes;  // "memory_access_bytes"
  std::optional<double> accuracy;             // "accuracy", in whatever unit the exporter used
  bool int8 = false;                          // "precision": "int8" (cheaper MACs)
};

// Parses a costs object; missing keys stay absent, keys of the wrong type are ignored. Only text
// that is not a JSON object is an error.
Status parse_branch_costs(const std::string& name, const std::string& costs_json,
                          BranchCosts* costs);

// Per-device constants of the cost model; defaults and their sources: docs/device-profile.md.
struct DeviceProfile {
  double e_mac_pj = 4.6;                   // fp32 multiply-add
  double e_mac_int8_pj = 0.23;             // int8 multiply-add
  double e_cache_pj_per_byte = 1.25;       // on-chip SRAM read
  double e_dram_pj_per_byte = 160.0;       // off-chip DRAM read
  double default_cache_rate = 0.5;         // r when no probe has run
  bool use_measured_power = true;          // energy = power x latency when power is readable
  double reference_frequency_ratio = 1.0;  // cur/max while the catalog latencies were measured
  double reference_cache_rate = 0.0;       // r while measured; 0: the first probe result
  double cache_sensitivity = 0.5;          // slowdown per unit relative drop of r
  int inference_threads = 1;               // threads one inference uses
  double correction_alpha = 0.2;           // EWMA weight of a new observed/predicted ratio
  size_t error_window = 4096;              // observations kept for the error statistics
};

// the cost model's energy of one inference, in mJ: e_mac * MACs + M * (r e_cache + (1 - r) e_dram)
double modelled_energy_mj(const DeviceProfile& profile, bool int8, double macs,
                          double memory_access_bytes, double cache_rate);

struct BranchEstimate {
  double latency_ms = 0;              // contention-scaled and corrected
  double latency_uncorrected_ms = 0;  // contention-scaled only
  bool latency_known = false;
  double memory_bytes = 0;
  bool memory_known = false;
  double energy_mj = 0;  // per inference
  bool energy_known = false;
  bool energy_measured = false;  // from measured power rather than the model
  double accuracy = 0;
  bool accuracy_known = false;
};

// |predicted - observed| / observed over the last error_window observations.
struct PredictionErrorStats {
  size_t count = 0;
  double median_corrected = 0, p90_corrected = 0;
  double median_uncorrected = 0, p90_uncorrected = 0;
};

// Why the current context makes inference slower than the catalog says.
struct ContentionFactors {
  double cpu = 1;        // CPU share lost to other runnable work
  double frequency = 1;  // clock below the reference
  double cache = 1;      // cache rate below the reference
  double total() const { return cpu * frequency * cache; }
};

class Profiler {
 public:
  explicit Profiler(std::vector<BranchCosts> branches, DeviceProfile profile = {});

  size_t branch_count() const { return branches_.size(); }
  const BranchCosts& costs(size_t branch) const { return branches_[branch]; }
  const DeviceProfile& profile() const { return profile_; }

  ContentionFactors contention(const ContextSample& sample);
  // Predicts every branch for `sample` and remembers the predictions for observe().
  const std::vector<BranchEstimate>& predict(const ContextSample& sample);
  const std::vector<BranchEstimate>& last_estimates() const { return estimates_; }
  // Modelled energy (mJ) of one inference at cache rate r: e_mac*MACs + M*(r*e_cache+(1-r)*e_dram).
  double model_energy_mj(size_t branch, double cache_rate) const;

  // Feeds one observed latency of `branch`: records the error of the last prediction, then
  // updates the branch's correction (and the device-wide one used for unobserved branches).
  void observe(size_t branch, double observed_ms);
  double correction(size_t branch) const;
  PredictionErrorStats error_stats() const;

 private:
  std::vector<BranchCosts> branches_;
  DeviceProfile profile_;
  std::vector<BranchEstimate> estimates_;
  std::vector<double> corrections_;
  std::vector<size_t> observations_;
  double global_correction_ = 1.0;
  size_t global_observations_ = 0;
  std::optional<double> reference_cache_rate_;
  // Ring buffers of relative errors.
  std::vector<double> errors_corrected_, errors_uncorrected_;
  size_t error_next_ = 0;
};

}  // namespace adascale
