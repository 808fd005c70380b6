// AdaptationLoop: a background thread that runs monitor -> profiler -> selector at a period and
// publishes the chosen branch atomically. The inference path never waits on it: it reads
// current_branch() (one atomic load) and reports observed latencies (a short, uncontended lock).
//
// Threads as a dimension: with max_threads > 1, a branch whose costs carry latency_by_threads
// also enters the selection once per measured thread count up to max_threads that its catalog
// shows faster than every smaller count (a count the catalog shows slower is never run), and
// the loop then picks the branch together with its threads; a count above the cores that other
// runnable work leaves free is not chosen. Branch indices stay the bundle's throughout.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/adapt/context_monitor.h"
#include "runtime/adapt/profiler.h"
#include "runtime/adapt/selector.h"

namespace adascale {

struct AdaptationOptions {
  ContextMonitorOptions monitor;  // monitor.period_ms is the loop period
  DeviceProfile device;
  SelectorOptions selector;
  size_t max_pending_observations = 4096;  // beyond this, observations are dropped and counted
  // Threads one inference may run on (the session's count); > 1 with latency_by_threads in the
  // costs makes threads a dimension of the choice (device.inference_threads is then 1).
  int max_threads = 1;
  // Each period is drawn within +-period_jitter of monitor.period_ms (PeriodSchedule), so that
  // two loops started together do not sample in lockstep and count each other's loop thread as
  // load; 0: a fixed period. Seeded from the process and the loop.
  double period_jitter = 0.2;
};

// What the run path runs: a branch and its threads (0: the loop does not choose threads; the
// model's count, which its latencies were timed on).
struct LoopChoice {
  int branch = -1;  // -1 before the first decision
  int threads = 0;
  int entry = -1;  // its index in last_estimates() (the branches first, then thread variants)
};

// The entries an AdaptationLoop with these costs and max_threads selects from, in its order.
std::vector<LoopChoice> loop_choices(const std::vector<BranchCosts>& branches, int max_threads);

struct SwitchEvent {
  double time_ms = 0;  // steady clock
  int from = -1;       // -1 on the initial decision
  int to = -1;
  int from_threads = 0, to_threads = 0;  // 0: the session's own count
  std::string from_name, to_name;
  SwitchReason reason = SwitchReason::kStay;
  bool nothing_fits = false;
  double predicted_ms = 0;       // predicted latency of `to` in the context that caused the switch
  double observed_ms = -1;       // last observed latency of `from`; -1 when none was reported
  double from_predicted_ms = 0;  // predicted latency of `from` in the same context
};

struct LoopStats {
  uint64_t iterations = 0;
  uint64_t switches = 0;
  uint64_t observations = 0;
  uint64_t dropped_observations = 0;
  bool nothing_fits = false;  // the last decision found no branch within the budgets
};

class AdaptationLoop {
 public:
  using SwitchCallback = std::function<void(const SwitchEvent&)>;

  AdaptationLoop(std::vector<BranchCosts> branches, AdaptationOptions options = {});
  ~AdaptationLoop();  // stops the thread
  AdaptationLoop(const AdaptationLoop&) = delete;
  AdaptationLoop& operator=(const AdaptationLoop&) = delete;

  // Validated immediately; applied at the next step. Safe while running.
  Status set_budgets(const Budgets& budgets);
  Budgets budgets() const;
  // Called on the loop thread (or the thread calling step()). It must return quickly and must
  // not call stop() or the destructor.
  void set_switch_callback(SwitchCallback callback);

  // Starts the background thread; it runs one step at once, then one every period.
  Status start();
  void stop();
  bool running() const { return running_.load(std::memory_order_acquire); }
  // One monitor -> profiler -> selector iteration on the calling thread (serialized with the
  // background thread). Replayers and tests use it for deterministic stepping.
  void step();

  // Lock-free read for the run path: the chosen branch, -1 before the first decision.
  int current_branch() const { return current().branch; }
  // The branch and its threads, from one atomic load.
  LoopChoice current() const {
    const int v = chosen_.load(std::memory_order_acquire);
    if (v < 0) return {};
    return {variant_branch_[static_cast<size_t>(v)], variant_threads_[static_cast<size_t>(v)], v};
  }
  // the branch on each thread count the loop may choose (branch, threads): threads as above
  std::vector<LoopChoice> choices() const;
  const std::string& branch_name(size_t branch) const { return names_[branch]; }
  size_t branch_count() const { return names_.size(); }
  int find_branch(const std::string& name) const;

  // Called by the run path after each inference of `branch` (ms per inference) on `threads`.
  // Without thread variants the count is not looked at; with them, 0 or 1 is the branch on one
  // thread, and a count the loop does not choose for that branch is ignored.
  void report_latency(int branch, double observed_ms, int threads = 0);

  ContextSample last_sample() const;
  std::vector<BranchEstimate> last_estimates() const;
  PredictionErrorStats prediction_errors() const;
  LoopStats stats() const;

 private:
  void run_thread();
  static double now_ms();

  std::vector<std::string> names_;  // per branch
  // per entry of the selection (the branches, then their thread variants)
  std::vector<int> variant_branch_, variant_threads_;
  AdaptationOptions options_;

  // Owned by whoever holds step_mutex_.
  std::mutex step_mutex_;
  ContextMonitor monitor_;
  Profiler profiler_;
  Selector selector_;
  std::vector<double> last_observed_;  // per entry, -1 when none
  std::vector<std::pair<int, double>> drained_;

  // Budgets handed over from set_budgets to the next step.
  mutable std::mutex budgets_mutex_;
  Budgets budgets_;
  bool budgets_dirty_ = false;

  // Observations queued by the run path.
  std::mutex pending_mutex_;
  std::vector<std::pair<int, double>> pending_;
  uint64_t dropped_ = 0;

  // Results published for readers.
  mutable std::mutex results_mutex_;
  ContextSample last_sample_;
  std::vector<BranchEstimate> last_estimates_;
  PredictionErrorStats errors_;
  LoopStats stats_;

  std::mutex callback_mutex_;
  SwitchCallback callback_;

  std::atomic<int> chosen_{-1};
  std::atomic<bool> running_{false};
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool stop_requested_ = false;
  std::thread thread_;
};

}  // namespace adascale
