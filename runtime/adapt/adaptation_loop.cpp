#include "runtime/adapt/adaptation_loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "runtime/adapt/period_schedule.h"

namespace adascale {
namespace {

// The selection's entries: every branch as it is, then each branch on every thread count of its
// latency_by_threads up to max_threads that is faster than all of its smaller counts.
// *thread_mode: some branch has latency_by_threads within max_threads, so its latency_ms is one
// thread's: the branches then run on one thread, whether or not a count was faster.
std::vector<BranchCosts> with_thread_variants(const std::vector<BranchCosts>& branches,
                                              int max_threads, std::vector<int>* branch_of,
                                              bool* thread_mode) {
  std::vector<BranchCosts> out = branches;
  *thread_mode = false;
  branch_of->clear();
  for (size_t b = 0; b < branches.size(); ++b) branch_of->push_back(static_cast<int>(b));
  for (size_t b = 0; b < branches.size(); ++b) {
    const BranchCosts& c = branches[b];
    if (!c.latency_median_ms) continue;
    double fastest = *c.latency_median_ms;
    for (const ThreadLatency& t : c.latency_by_threads) {
      if (t.threads > max_threads) break;  // increasing (branch_costs.h)
      *thread_mode = true;
      if (!(t.median_ms < fastest)) continue;
      fastest = t.median_ms;
      BranchCosts v = c;
      v.threads = t.threads;
      v.latency_median_ms = t.median_ms;
      v.latency_p90_ms = t.p90_ms;
      v.latency_by_threads.clear();
      out.push_back(std::move(v));
      branch_of->push_back(static_cast<int>(b));
    }
  }
  if (*thread_mode)
    for (size_t b = 0; b < branches.size(); ++b) out[b].threads = 1;
  return out;
}

// entry v of the selection runs branch_of[v] on threads[v]
std::vector<LoopChoice> choices_of(const std::vector<int>& branch_of,
                                   const std::vector<int>& threads) {
  std::vector<LoopChoice> out;
  for (size_t v = 0; v < branch_of.size(); ++v)
    out.push_back({branch_of[v], threads[v], static_cast<int>(v)});
  return out;
}

AdaptationOptions with_thread_options(AdaptationOptions options, bool thread_mode) {
  // each entry says its threads; the CPU share is judged for one, and a larger count only runs
  // where the cores for it are free
  if (thread_mode) options.device.inference_threads = 1;
  return options;
}

}  // namespace

AdaptationLoop::AdaptationLoop(std::vector<BranchCosts> branches, AdaptationOptions options)
    : options_(std::move(options)), monitor_(options_.monitor), selector_(options_.selector) {
  bool thread_mode = false;
  std::vector<BranchCosts> entries =
      with_thread_variants(branches, options_.max_threads, &variant_branch_, &thread_mode);
  options_ = with_thread_options(options_, thread_mode);
  for (const BranchCosts& e : entries) variant_threads_.push_back(e.threads);
  profiler_ = Profiler(std::move(entries), options_.device);
  for (const BranchCosts& costs : branches) names_.push_back(costs.name);
  last_observed_.assign(variant_branch_.size(), -1.0);
  pending_.reserve(options_.max_pending_observations);
  drained_.reserve(options_.max_pending_observations);
}

AdaptationLoop::~AdaptationLoop() { stop(); }

double AdaptationLoop::now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

Status AdaptationLoop::set_budgets(const Budgets& budgets) {
  Status s = validate_budgets(budgets);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> lock(budgets_mutex_);
  budgets_ = budgets;
  budgets_dirty_ = true;
  return s;
}

Budgets AdaptationLoop::budgets() const {
  std::lock_guard<std::mutex> lock(budgets_mutex_);
  return budgets_;
}

void AdaptationLoop::set_switch_callback(SwitchCallback callback) {
  std::lock_guard<std::mutex> lock(callback_mutex_);
  callback_ = std::move(callback);
}

int AdaptationLoop::find_branch(const std::string& name) const {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return static_cast<int>(i);
  return -1;
}

std::vector<LoopChoice> AdaptationLoop::choices() const {
  return choices_of(variant_branch_, variant_threads_);
}

std::vector<LoopChoice> loop_choices(const std::vector<BranchCosts>& branches, int max_threads) {
  std::vector<int> branch_of, threads;
  bool thread_mode = false;
  for (const BranchCosts& e : with_thread_variants(branches, max_threads, &branch_of, &thread_mode))
    threads.push_back(e.threads);
  return choices_of(branch_of, threads);
}

void AdaptationLoop::report_latency(int branch, double observed_ms, int threads) {
  if (branch < 0 || static_cast<size_t>(branch) >= names_.size()) return;
  if (!(observed_ms > 0) || !std::isfinite(observed_ms)) return;
  int entry = branch;                                              // the branch itself comes first
  const int base = variant_threads_[static_cast<size_t>(branch)];  // 0: no thread variants
  if (base != 0 && threads > 1 && threads != base) {
    entry = -1;
    for (size_t v = names_.size(); v < variant_branch_.size(); ++v)
      if (variant_branch_[v] == branch && variant_threads_[v] == threads)
        entry = static_cast<int>(v);
    if (entry < 0) return;
  }
  std::lock_guard<std::mutex> lock(pending_mutex_);
  if (pending_.size() < options_.max_pending_observations)
    pending_.emplace_back(entry, observed_ms);  // capacity reserved: no allocation here
  else
    ++dropped_;
}

void AdaptationLoop::step() {
  std::lock_guard<std::mutex> step_lock(step_mutex_);
  {
    std::lock_guard<std::mutex> lock(budgets_mutex_);
    if (budgets_dirty_) {
      selector_.set_budgets(budgets_);  // validated in set_budgets
      budgets_dirty_ = false;
    }
  }
  uint64_t dropped = 0;
  {
    std::lock_guard<std::mutex> lock(pending_mutex_);
    drained_.swap(pending_);  // both keep their capacity
    dropped = dropped_;
  }
  // The prediction error of an observation is judged against the prediction it was made under
  // (the previous step's); the correction against the context that ends its interval, so that a
  // contention step the context factors already see is not learnt a second time as a correction.
  const ContextSample sample = monitor_.sample();
  const ContentionFactors factors = profiler_.contention(sample);
  for (const auto& [branch, ms] : drained_) {
    if (factors.settled) profiler_.observe(static_cast<size_t>(branch), ms, factors.total());
    last_observed_[static_cast<size_t>(branch)] = ms;
  }
  const uint64_t observed = drained_.size();
  drained_.clear();

  const std::vector<BranchEstimate>& estimates = profiler_.predict(sample, factors);
  SelectionContext context = selection_context(sample);
  context.contention = factors.total();
  context.free_threads = std::max(1, static_cast<int>(std::floor(factors.free_cores + 0.25)));
  const Decision decision = selector_.decide(estimates, context, sample.time_ms);
  if (decision.branch >= 0) chosen_.store(decision.branch, std::memory_order_release);

  {
    std::lock_guard<std::mutex> lock(results_mutex_);
    last_sample_ = sample;
    last_estimates_ = estimates;
    errors_ = profiler_.error_stats();
    ++stats_.iterations;
    stats_.switches += decision.switched ? 1 : 0;
    stats_.observations += observed;
    stats_.dropped_observations = dropped;
    stats_.nothing_fits = decision.nothing_fits;
  }

  if (decision.switched) {
    SwitchEvent event;
    event.time_ms = sample.time_ms;
    const int from = decision.previous, to = decision.branch;
    if (from >= 0) {
      const size_t f = static_cast<size_t>(from);
      event.from = variant_branch_[f];
      event.from_threads = variant_threads_[f];
      event.from_name = names_[static_cast<size_t>(event.from)];
      event.observed_ms = last_observed_[f];
      event.from_predicted_ms = estimates[f].latency_ms;
    }
    event.to = variant_branch_[static_cast<size_t>(to)];
    event.to_threads = variant_threads_[static_cast<size_t>(to)];
    event.to_name = names_[static_cast<size_t>(event.to)];
    event.reason = decision.reason;
    event.nothing_fits = decision.nothing_fits;
    event.predicted_ms = estimates[static_cast<size_t>(to)].latency_ms;
    std::lock_guard<std::mutex> lock(callback_mutex_);
    if (callback_) callback_(event);
  }
}

Status AdaptationLoop::start() {
  if (names_.empty()) return error_status(ErrorCode::kInvalidArgument, "no branches to adapt");
  if (running_.exchange(true)) return ok_status();
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    stop_requested_ = false;
  }
  // Prime the CPU counters so the first decision already sees utilisation.
  {
    std::lock_guard<std::mutex> step_lock(step_mutex_);
    monitor_.sample_at(now_ms(), false);
  }
  thread_ = std::thread(&AdaptationLoop::run_thread, this);
  return ok_status();
}

void AdaptationLoop::stop() {
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    stop_requested_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  running_.store(false, std::memory_order_release);
}

void AdaptationLoop::run_thread() {
  PeriodSchedule schedule(options_.monitor.period_ms > 0 ? options_.monitor.period_ms : 100.0,
                          options_.period_jitter);
  auto next = std::chrono::steady_clock::now();
  while (true) {
    step();
    next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double, std::milli>(schedule.next_ms()));
    const auto now = std::chrono::steady_clock::now();
    if (next < now) next = now;  // after a stall, do not burst to catch up
    std::unique_lock<std::mutex> lock(wake_mutex_);
    if (wake_.wait_until(lock, next, [this] { return stop_requested_; })) return;
  }
}

ContextSample AdaptationLoop::last_sample() const {
  std::lock_guard<std::mutex> lock(results_mutex_);
  return last_sample_;
}

std::vector<BranchEstimate> AdaptationLoop::last_estimates() const {
  std::lock_guard<std::mutex> lock(results_mutex_);
  return last_estimates_;
}

PredictionErrorStats AdaptationLoop::prediction_errors() const {
  std::lock_guard<std::mutex> lock(results_mutex_);
  return errors_;
}

LoopStats AdaptationLoop::stats() const {
  std::lock_guard<std::mutex> lock(results_mutex_);
  return stats_;
}

}  // namespace adascale
