#include "runtime/adapt/profiler.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "base/statistics.h"

namespace adascale {
namespace {

// no observations yet: 0, the value the statistics start from
double quantile_or_zero(const std::vector<double>& values, double q) {
  return values.empty() ? 0.0 : base::percentile(values, q);
}

}  // namespace

Profiler::Profiler(std::vector<BranchCosts> branches, DeviceProfile profile)
    : branches_(std::move(branches)),
      profile_(profile),
      estimates_(branches_.size()),
      levels_(branches_.size(), 1.0),
      observed_at_(branches_.size(), 0),
      observations_(branches_.size(), 0) {
  if (profile_.reference_cache_rate > 0) reference_cache_rate_ = profile_.reference_cache_rate;
  if (profile_.error_window == 0) profile_.error_window = 1;
  if (profile_.inference_threads < 1) profile_.inference_threads = 1;
  errors_corrected_.reserve(profile_.error_window);
  errors_uncorrected_.reserve(profile_.error_window);
  if (profile_.tail_window == 0) profile_.tail_window = 1;
  // base::percentile throws outside [0, 1] (NaN too), which the loop thread must never do
  if (!(profile_.tail_quantile >= 0 && profile_.tail_quantile <= 1))
    profile_.tail_quantile = DeviceProfile{}.tail_quantile;
  tail_all_.ratios.reserve(profile_.tail_window);
  for (TailRing& ring : tail_levels_) ring.ratios.reserve(profile_.tail_window);
  if (!(profile_.contention_forgetting > 0 && profile_.contention_forgetting <= 1))
    profile_.contention_forgetting = DeviceProfile{}.contention_forgetting;
  if (!(profile_.contention_ridge > 0))
    profile_.contention_ridge = DeviceProfile{}.contention_ridge;
  for (LevelFit& fit : fits_)
    fit = LevelFit(profile_.contention_forgetting, profile_.contention_ridge);
  // A branch's size relative to the geometric mean catalog latency, so that the additive term of
  // the contention model is in units of a typical branch.
  double log_sum = 0;
  size_t known = 0;
  for (const BranchCosts& c : branches_)
    if (c.latency_median_ms && *c.latency_median_ms > 0) {
      log_sum += std::log(*c.latency_median_ms);
      ++known;
    }
  const double reference = known ? std::exp(log_sum / static_cast<double>(known)) : 1.0;
  for (const BranchCosts& c : branches_)
    size_z_.push_back(
        c.latency_median_ms && *c.latency_median_ms > 0 ? reference / *c.latency_median_ms : 1.0);
  branch_tails_.resize(branches_.size() * kTailLevels);
}

int Profiler::tail_level(double factor) {
  return factor < 1.25 ? 0 : factor < 1.75 ? 1 : factor < 2.5 ? 2 : 3;
}

void Profiler::push_tail(TailRing* ring, double ratio) const {
  if (ring->ratios.size() < profile_.tail_window)
    ring->ratios.push_back(ratio);
  else
    ring->ratios[ring->next] = ratio;
  ring->next = (ring->next + 1) % profile_.tail_window;
}

double Profiler::tail_factor(double contention_factor) const {
  constexpr size_t kEnough = 8;
  const int index = tail_level(contention_factor);
  const TailRing& level = tail_levels_[index];
  if (level.ratios.size() >= kEnough)
    return std::max(1.0, base::percentile(level.ratios, profile_.tail_quantile));
  double tail = 1.0;
  if (tail_all_.ratios.size() >= kEnough)
    tail = std::max(tail, base::percentile(tail_all_.ratios, profile_.tail_quantile));
  if (index > 0) tail = std::max(tail, profile_.contended_tail_prior);
  return tail;
}

ContentionFactors Profiler::contention(const ContextSample& sample) {
  ContentionFactors f;
  double cores =
      sample.cpu_count ? *sample.cpu_count : std::max(1u, std::thread::hardware_concurrency());
  if (sample.cgroup_cpu_limit_cores) cores = std::min(cores, *sample.cgroup_cpu_limit_cores);
  cores = std::max(cores, 0.1);
  // Busy cores taken by others: utilisation over the last period is steadier than the
  // instantaneous run queue, which also counts the sampling thread itself.
  // Utilisation saturates with the CPUs (three busy threads on two cores still read as two busy
  // cores, minus our share), so the runnable count of other processes, which keeps counting
  // demand, wins when it is larger; as far as it held since the previous sample
  // (sustained_runnable), since one snapshot also catches tasks that are gone a moment later.
  const std::optional<double> runnable = sample.others_runnable();
  auto others_with = [&](const std::optional<double>& others_runnable) {
    if (sample.others_cpu_utilization) {
      const double busy =
          *sample.others_cpu_utilization * (sample.cpu_count ? *sample.cpu_count : cores);
      return others_runnable ? std::max(busy, *others_runnable) : busy;
    }
    if (others_runnable) return *others_runnable;
    if (sample.procs_running) return std::max(0.0, *sample.procs_running - 1);
    return sample.loadavg_1.value_or(0.0);
  };
  // Fair sharing: with more runnable threads than cores each one gets cores / threads of a core.
  auto share_of = [&](double busy) {
    return std::max(1.0, (busy + profile_.inference_threads) / cores);
  };
  const double snapshot = others_with(runnable);
  const double others =
      profile_.sustained_runnable ? others_with(sample.sustained_others_runnable()) : snapshot;
  f.cpu = share_of(others);
  // a rise the snapshot shows and the previous sample did not, large enough to change the share:
  // a new load or a passing task, not yet known which
  f.settled = !(share_of(snapshot) > f.cpu);
  f.free_cores = std::max(0.0, cores - others);
  if (sample.frequency_ratio && *sample.frequency_ratio > 0)
    f.frequency =
        std::max(1.0, profile_.reference_frequency_ratio / std::max(0.1, *sample.frequency_ratio));
  if (sample.cache_rate) {
    if (!reference_cache_rate_) reference_cache_rate_ = *sample.cache_rate;
    const double drop = (*reference_cache_rate_ - *sample.cache_rate) / *reference_cache_rate_;
    f.cache = 1.0 + profile_.cache_sensitivity * std::max(0.0, drop);
  }
  return f;
}

double modelled_energy_mj(const DeviceProfile& p, bool int8, double macs,
                          double memory_access_bytes, double r) {
  const double e_mac = int8 ? p.e_mac_int8_pj : p.e_mac_pj;
  const double pj = e_mac * macs + memory_access_bytes *
                                       (r * p.e_cache_pj_per_byte + (1 - r) * p.e_dram_pj_per_byte);
  return pj * 1e-9;
}

double Profiler::model_energy_mj(size_t branch, double r) const {
  const BranchCosts& c = branches_[branch];
  return modelled_energy_mj(profile_, c.int8, c.macs.value_or(0), c.memory_access_bytes.value_or(0),
                            r);
}

double Profiler::mean_log_level(int threads) const {
  double log_sum = 0, same_sum = 0;
  size_t observed = 0, same = 0;
  for (size_t i = 0; i < levels_.size(); ++i)
    if (observations_[i] > 0) {
      const double log_level = std::log(levels_[i]);
      log_sum += log_level;
      ++observed;
      if (branches_[i].threads == threads) {
        same_sum += log_level;
        ++same;
      }
    }
  if (same) return same_sum / static_cast<double>(same);
  return observed ? log_sum / static_cast<double>(observed) : 0.0;
}

double Profiler::correction(size_t branch) const {
  return correction(branch, mean_log_level(branches_[branch].threads));
}

double Profiler::correction(size_t branch, double log_mean) const {
  return relaxed_level(branch, log_mean) * drift_;
}

double Profiler::relaxed_level(size_t branch, double log_mean) const {
  if (observations_[branch] == 0) return std::exp(log_mean);
  // Geometric interpolation toward the mean level, by how many observations ago it was learnt.
  const double since = static_cast<double>(total_observations_ - observed_at_[branch]);
  const double keep = profile_.level_memory > 0 ? std::exp(-since / profile_.level_memory) : 1.0;
  return std::exp(keep * std::log(levels_[branch]) + (1 - keep) * log_mean);
}

double Profiler::multiplier(size_t branch, int level, const LevelFit::Coefficients& fit) const {
  if (level == 0) return drift_;
  return std::clamp(fit.at(size_z_[branch]), 0.05, 20.0);
}

double Profiler::contention_multiplier(size_t branch, double contention_factor) const {
  const int level = tail_level(contention_factor);
  return multiplier(branch, level, fits_[level].solve(drift_));
}

const std::vector<BranchEstimate>& Profiler::predict(const ContextSample& sample) {
  return predict(sample, contention(sample));
}

const std::vector<BranchEstimate>& Profiler::predict(const ContextSample& sample,
                                                     const ContentionFactors& factors) {
  const double factor = factors.total();
  last_factor_ = factor;
  const double tail = tail_factor(factor);
  const int level = tail_level(factor);
  // once per prediction, not per branch
  const LevelFit::Coefficients fit = fits_[level].solve(drift_);
  constexpr size_t kEnough = 8;
  const QuantileRing& excess = excess_[level];
  const bool steady = steady_tail(level);
  const double r = sample.cache_rate.value_or(profile_.default_cache_rate);
  // once per thread count, not once per branch (a single count without thread variants)
  log_means_.clear();
  auto log_mean_of = [&](int threads) {
    for (const auto& [t, m] : log_means_)
      if (t == threads) return m;
    log_means_.emplace_back(threads, mean_log_level(threads));
    return log_means_.back().second;
  };
  const std::optional<double> power =
      profile_.use_measured_power ? sample.measured_power_w() : std::nullopt;
  last_power_w_ = power;
  last_cache_rate_ = r;
  for (size_t i = 0; i < branches_.size(); ++i) {
    const BranchCosts& c = branches_[i];
    BranchEstimate& e = estimates_[i];
    e.threads = c.threads;
    e.latency_known = c.latency_median_ms.has_value();
    e.latency_uncorrected_ms = c.latency_median_ms.value_or(0) * factor;
    const double branch_level = relaxed_level(i, log_mean_of(c.threads));
    e.latency_ms = e.latency_uncorrected_ms * branch_level * multiplier(i, level, fit);
    // The branch's own spread at this level where it has one; else the level's excess in ms,
    // which a wait of fixed length adds to every branch alike (a spread learnt as a ratio on a
    // small branch would make every larger one look far too slow); else the level's ratio.
    const QuantileRing& own = branch_tails_[i * kTailLevels + static_cast<size_t>(level)];
    e.tail_own = own.size() >= kEnough;
    if (e.tail_own) {
      // its ratios were taken against this base (observe), at least the median
      const double base = steady ? e.latency_uncorrected_ms * branch_level : e.latency_ms;
      e.latency_tail_ms = std::max(e.latency_ms, base * own.quantile());
    } else if (excess.size() >= kEnough) {
      e.latency_tail_ms = e.latency_ms + std::max(0.0, excess.quantile());
    } else {
      e.latency_tail_ms =
          std::max(e.latency_ms, e.latency_uncorrected_ms * branch_level * drift_ * tail);
    }
    e.memory_known = c.memory_bytes.has_value();
    e.memory_bytes = c.memory_bytes.value_or(0);
    e.accuracy_known = c.accuracy.has_value();
    e.accuracy = c.accuracy.value_or(0);
    const bool modelled = c.macs.has_value() || c.memory_access_bytes.has_value();
    if (power && energy_correction_ > 0 && modelled) {
      // the model at the measured scale: keeps the branches' relative costs
      e.energy_mj = energy_correction_ * model_energy_mj(i, r);
      e.energy_known = e.energy_measured = true;
    } else if (power && e.latency_known) {
      e.energy_mj = *power * e.latency_ms;  // W x ms = mJ, until a measurement scales the model
      e.energy_known = e.energy_measured = true;
    } else {
      e.energy_measured = false;
      e.energy_known = c.macs.has_value() || c.memory_access_bytes.has_value();
      e.energy_mj = e.energy_known ? model_energy_mj(i, r) : 0;
    }
  }
  return estimates_;
}

void Profiler::observe(size_t branch, double observed_ms, std::optional<double> factor) {
  if (branch >= branches_.size() || !(observed_ms > 0) || !std::isfinite(observed_ms)) return;
  const BranchEstimate& e = estimates_[branch];
  if (!e.latency_known || e.latency_uncorrected_ms <= 0) return;
  if (factor && !(*factor > 0 && std::isfinite(*factor))) factor.reset();
  if (last_power_w_) {
    // measured energy of this inference against the model's: the scale of the model here
    const double model = model_energy_mj(branch, last_cache_rate_);
    if (model > 0) {
      const double ratio = std::clamp(*last_power_w_ * observed_ms / model, 1e-3, 1e6);
      energy_correction_ = energy_correction_ > 0 ? 0.8 * energy_correction_ + 0.2 * ratio : ratio;
    }
  }
  // The corrected prediction as it stands now: several observations may arrive between two
  // predict() calls and each one should be judged against the latest correction.
  const double level_now = relaxed_level(branch, mean_log_level(branches_[branch].threads));
  const int predicted_level = tail_level(last_factor_);
  const double corrected_ms =
      e.latency_uncorrected_ms * level_now *
      multiplier(branch, predicted_level, fits_[predicted_level].solve(drift_));
  const double corrected_error = std::fabs(corrected_ms - observed_ms) / observed_ms;
  const double uncorrected_error = std::fabs(e.latency_uncorrected_ms - observed_ms) / observed_ms;
  if (errors_corrected_.size() < profile_.error_window) {
    errors_corrected_.push_back(corrected_error);
    errors_uncorrected_.push_back(uncorrected_error);
  } else {
    errors_corrected_[error_next_] = corrected_error;
    errors_uncorrected_[error_next_] = uncorrected_error;
  }
  error_next_ = (error_next_ + 1) % profile_.error_window;

  // One wild measurement (a page fault storm, a preemption) must not swing the correction.
  const double reference =
      factor ? e.latency_uncorrected_ms / last_factor_ * *factor : e.latency_uncorrected_ms;
  const double ratio = std::clamp(observed_ms / reference, 0.05, 20.0);
  const int level_index = tail_level(factor.value_or(last_factor_));
  const double mult = multiplier(branch, level_index, fits_[level_index].solve(drift_));
  const double tail_ratio = ratio / (level_now * drift_);
  push_tail(&tail_all_, tail_ratio);
  push_tail(&tail_levels_[level_index], tail_ratio);
  const double q = profile_.tail_quantile;
  branch_tail(branch, level_index)
      .push(ratio / (level_now * (steady_tail(level_index) ? 1.0 : mult)), profile_.tail_window, q);
  excess_[level_index].push(observed_ms - reference * level_now * mult, profile_.tail_window, q);
  if (level_index > 0) {
    // Under load the contention model learns what the factors miss; a branch's level (how it
    // compares with its catalog latency on this device) is learnt at idle only, where nothing
    // else moves, so that a load does not stay in the levels after it ends.
    fits_[level_index].add(size_z_[branch], ratio / level_now);
    if (observations_[branch] > 0) {
      levels_[branch] = level_now;
      observed_at_[branch] = ++total_observations_;
    }
    return;
  }
  const double a = profile_.correction_alpha;
  // The first observation of a branch sets its level, with the drift of the moment taken out.
  const double b = profile_.level_alpha;
  double& level = levels_[branch];
  if (observations_[branch] > 0) level = level_now;  // relaxed while away
  level = observations_[branch] == 0 ? ratio / drift_ : (1 - b) * level + b * ratio / drift_;
  observed_at_[branch] = ++total_observations_;
  drift_ = std::clamp((1 - a) * drift_ + a * ratio / level, 0.05, 20.0);
  ++observations_[branch];
}

PredictionErrorStats Profiler::error_stats() const {
  PredictionErrorStats s;
  s.count = errors_corrected_.size();
  s.median_corrected = quantile_or_zero(errors_corrected_, 0.5);
  s.p90_corrected = quantile_or_zero(errors_corrected_, 0.9);
  s.median_uncorrected = quantile_or_zero(errors_uncorrected_, 0.5);
  s.p90_uncorrected = quantile_or_zero(errors_uncorrected_, 0.9);
  return s;
}

}  // namespace adascale
