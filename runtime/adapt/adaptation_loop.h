// AdaptationLoop: a background thread that runs monitor -> profiler -> selector at a period and
// publishes the chosen branch atomically. The inference path never waits on it: it reads
// current_branch() (one atomic load) and reports observed latencies (a short, uncontended lock).
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
};

struct SwitchEvent {
  double time_ms = 0;  // steady clock
  int from = -1;       // -1 on the initial decision
  int to = -1;
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
  int current_branch() const { return chosen_.load(std::memory_order_acquire); }
  const std::string& branch_name(size_t branch) const { return names_[branch]; }
  size_t branch_count() const { return names_.size(); }
  int find_branch(const std::string& name) const;

  // Called by the run path after each inference of `branch` (ms per inference).
  void report_latency(int branch, double observed_ms);

  ContextSample last_sample() const;
  std::vector<BranchEstimate> last_estimates() const;
  PredictionErrorStats prediction_errors() const;
  LoopStats stats() const;

 private:
  void run_thread();
  static double now_ms();

  std::vector<std::string> names_;
  AdaptationOptions options_;

  // Owned by whoever holds step_mutex_.
  std::mutex step_mutex_;
  ContextMonitor monitor_;
  Profiler profiler_;
  Selector selector_;
  std::vector<double> last_observed_;  // per branch, -1 when none
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
