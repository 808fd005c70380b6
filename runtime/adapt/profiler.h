// Profiler: predicts each branch's latency, memory and energy in the current context from the
// bundle's catalog costs (runtime/branch_costs.h), and corrects latency online from what the run
// path observes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/adapt/contention_model.h"
#include "runtime/adapt/context_monitor.h"
#include "runtime/branch_costs.h"
#include "runtime/graph.h"

namespace adascale {

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
  double correction_alpha = 0.2;           // EWMA weight of a new ratio for the device drift
  double level_alpha = 0.02;               // EWMA weight of a new ratio for a branch's level
  double level_memory = 150;  // observations of others that relax a level 63% to the mean (0: off)
  double tail_quantile = 0.95;  // quantile of recent observed/predicted ratios ...
  size_t tail_window = 64;      // ... over this many observations: the tail factor
  // Tail factor of a contended level (total factor >= 1.25) until it has observations of its
  // own: at least this. The first requests after a load starts are the ones a tail learnt at
  // idle gets wrong (docs/device-profile.md). 1: no prior.
  double contended_tail_prior = 1.5;
  // Under load, a branch's own tail is the quantile of its observations against its idle level
  // and the context factor alone, not against the contention model: the model's multiplier
  // follows the phases in which the inference has a core to itself or shares one (they last
  // about ten requests under two burners on two cores), so a tail taken relative to it shrinks
  // in a fast phase and lets the loop step up into the next slow one. false: relative to the
  // model, as at idle.
  bool steady_contended_tail = true;
  // The runnable count of other processes counts toward the CPU share only as far as the
  // previous sample also showed it (ContextSample::sustained_others_runnable): one snapshot with
  // a task or two more made the loop step down and, a few decisions later, back up. Utilisation
  // over the period still counts at once. false: every snapshot counts.
  bool sustained_runnable = true;
  size_t error_window = 4096;  // observations kept for the error statistics
  // Contention model of the contended levels (contention_model.h): weight an older observation
  // keeps per new one of the same level, and the weight of the prior (in observations).
  double contention_forgetting = 0.95;
  double contention_ridge = 1.0;
};

// the cost model's energy of one inference, in mJ: e_mac * MACs + M * (r e_cache + (1 - r) e_dram)
double modelled_energy_mj(const DeviceProfile& profile, bool int8, double macs,
                          double memory_access_bytes, double cache_rate);

struct BranchEstimate {
  int threads = 0;                    // BranchCosts::threads of the entry (0: the session's)
  double latency_ms = 0;              // contention-scaled and corrected
  double latency_uncorrected_ms = 0;  // contention-scaled only
  double latency_tail_ms = 0;         // latency_ms x tail factor: what a bad request takes
  // the tail rests on this entry's own observations at the current load level (else it is the
  // level's, or a prior's): what the selector asks of a step up under load
  bool tail_own = false;
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
  // cores that other runnable work leaves to this process (not a factor: what threads an
  // inference may use without waiting for a core)
  double free_cores = 1;
  // false while the runnable count of others stands above what the previous sample showed, by
  // enough to change the CPU share (DeviceProfile::sustained_runnable): the factors leave that
  // rise out until it holds, and latencies observed meanwhile are not learnt from, since the
  // context that explains them is not known yet
  bool settled = true;
  double total() const { return cpu * frequency * cache; }
};

class Profiler {
 public:
  explicit Profiler(std::vector<BranchCosts> branches, DeviceProfile profile = {});
  Profiler() : Profiler(std::vector<BranchCosts>{}) {}  // no branches

  size_t branch_count() const { return branches_.size(); }
  const BranchCosts& costs(size_t branch) const { return branches_[branch]; }
  const DeviceProfile& profile() const { return profile_; }

  ContentionFactors contention(const ContextSample& sample);
  // Predicts every branch for `sample` and remembers the predictions for observe().
  const std::vector<BranchEstimate>& predict(const ContextSample& sample);
  // The same with factors already computed from `sample` (contention() has state: call it once).
  const std::vector<BranchEstimate>& predict(const ContextSample& sample,
                                             const ContentionFactors& factors);
  const std::vector<BranchEstimate>& last_estimates() const { return estimates_; }
  // Modelled energy (mJ) of one inference at cache rate r: e_mac*MACs + M*(r*e_cache+(1-r)*e_dram).
  double model_energy_mj(size_t branch, double cache_rate) const;

  // Feeds one observed latency of `branch`: records the error of the last prediction, then
  // updates the correction, which is level x drift. A branch's level (level_alpha, slow) is how
  // it compares with its catalog latency on this device; the drift (correction_alpha, fast) is
  // what the context factors miss right now (a slower host, load they do not see), learnt from
  // whichever branch runs, relative to its level. So a slowdown that hits every branch carries
  // over at once to the branches not running, and ends for them when it ends, while each keeps
  // its own level; an unobserved branch gets the geometric mean level of the observed ones. A
  // level learnt long ago relaxes toward that mean as other branches are observed (level_memory),
  // so a branch first seen in a bad moment, and then never chosen again, is tried again later.
  // `factor`: the contention factor the correction is judged against; by default the one of the
  // last prediction. The loop passes the factor of the sample that ends the interval in which
  // the inference ran, so that load the model already explains is not counted twice.
  void observe(size_t branch, double observed_ms, std::optional<double> factor = std::nullopt);
  double correction(size_t branch) const;
  // Where a power reading exists (powercap, a discharging battery), measured energy per
  // inference (power x the observed latency of the branch that ran) over the model's energy for
  // that branch: a moving average the model's energy of every branch is multiplied by, so that
  // branches keep the model's relative costs at the device's measured scale. 0 until a
  // measurement arrives (energy is then the model's alone, or power x predicted latency).
  double energy_correction() const { return energy_correction_; }
  // How much slower than predicted the slow requests are: the tail_quantile of observed /
  // corrected-predicted over the last tail_window observations made at the same contention level
  // (total factor below 1.25, 1.75, 2.5, or above), at least 1; with fewer than 8 of those, over
  // the last tail_window observations of any level (1 until 8 are in). Preemption by other
  // runnable tasks makes latency bimodal under contention, so the median prediction alone keeps
  // a branch that misses a budget on many requests; per level, so that the spread seen under
  // load does not outlive it.
  double tail_factor(double contention_factor) const;
  double tail_factor() const { return tail_factor(last_factor_); }
  // The latency multiplier of `branch` at the contention level of `contention_factor` on top of
  // the context factors and the branch's level: the drift at idle, the fitted contention model
  // (LevelFit) under load.
  double contention_multiplier(size_t branch, double contention_factor) const;
  PredictionErrorStats error_stats() const;

 private:
  std::vector<BranchCosts> branches_;
  DeviceProfile profile_;
  std::vector<BranchEstimate> estimates_;
  double last_factor_ = 1.0;            // contention factor of the last prediction
  std::optional<double> last_power_w_;  // measured power at the last prediction
  double last_cache_rate_ = 0;
  double energy_correction_ = 0;       // see energy_correction()
  std::vector<double> levels_;         // per branch, see observe()
  std::vector<uint64_t> observed_at_;  // total_observations_ at the branch's last observation
  uint64_t total_observations_ = 0;
  std::vector<size_t> observations_;
  double drift_ = 1.0;
  std::vector<std::pair<int, double>> log_means_;  // predict()'s, per thread count
  std::optional<double> reference_cache_rate_;
  // Ring buffers of relative errors.
  std::vector<double> errors_corrected_, errors_uncorrected_;
  size_t error_next_ = 0;
  // Rings of observed / corrected prediction: every observation, and per contention level.
  struct TailRing {
    std::vector<double> ratios;
    size_t next = 0;
  };
  static constexpr int kTailLevels = 4;
  static int tail_level(double contention_factor);
  // whether a branch's own tail at `level` is taken against its idle level (steady_contended_tail)
  bool steady_tail(int level) const { return level > 0 && profile_.steady_contended_tail; }
  // Over the observed entries' levels of `threads` (BranchCosts::threads): a thread variant's
  // level is not a one-thread entry's (its plan differs), so an unobserved entry takes the mean
  // of its own count where one of that count was observed, else of all.
  double mean_log_level(int threads) const;
  double correction(size_t branch, double log_mean) const;
  double relaxed_level(size_t branch, double log_mean) const;  // correction without the drift
  double multiplier(size_t branch, int level, const LevelFit::Coefficients& fit) const;
  QuantileRing& branch_tail(size_t branch, int level) {
    return branch_tails_[branch * kTailLevels + static_cast<size_t>(level)];
  }
  void push_tail(TailRing* ring, double ratio) const;
  TailRing tail_all_;
  TailRing tail_levels_[kTailLevels];
  // Contention model per level (level 0, idle, uses the drift), each branch's size for it, and
  // the tails it adds: per branch and level the ratios observed / predicted, per level the
  // excess observed - predicted in ms (for branches without their own ring).
  LevelFit fits_[kTailLevels];
  std::vector<double> size_z_;
  std::vector<QuantileRing> branch_tails_;
  QuantileRing excess_[kTailLevels];
};

}  // namespace adascale
