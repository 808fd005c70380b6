// Internal to the scenario replayer (scenario_run.h): one policy's run of the timeline. The run
// path classifies requests of frame_images images while a driver thread plays the events
// (burners, balloons, budget changes) and samples the adaptation loop's context.
#pragma once

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "runtime/adapt/adaptation_loop.h"
#include "tools/scenario/scenario_run.h"

namespace adascale::scenario {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kMiB = 1024.0 * 1024.0;

double now_ms();  // steady clock
// Throws ScenarioError("interrupted") once SIGINT or SIGTERM arrived.
void check_interrupt();

// Classifies requests of `frame_images` images, cycling through the test split.
class FrameRunner {
 public:
  FrameRunner(const Workload& w, int frame_images)
      : w_(w), images_(frame_images), logits_(std::max<size_t>(w.classes, 1)) {
    for (size_t i = 0; i < w.costs.size(); ++i) names_.push_back(w.costs[i].name);
  }
  void rewind() { cursor_ = 0; }
  // Runs one request on `branch` and `threads` (0: the runtime's count); returns its wall time
  // in ms (switching included).
  double run(int branch, int threads, int* correct) {
    const double start = now_ms();
    if (branch != selected_) {
      check(adascale_select(w_.runtime, names_[static_cast<size_t>(branch)].c_str()), "select");
      selected_ = branch;
    }
    if (threads != threads_) {
      check(adascale_set_threads(w_.runtime, threads), "set threads");
      threads_ = threads;
    }
    int right = 0;
    for (int j = 0; j < images_; ++j) {
      const size_t index = cursor_++ % w_.count;
      check(adascale_run(w_.runtime, w_.pixels + index * w_.image_floats, w_.image_floats,
                         logits_.data(), logits_.size()),
            "run");
      const size_t best =
          static_cast<size_t>(std::max_element(logits_.begin(), logits_.end()) - logits_.begin());
      right += static_cast<int64_t>(best) == w_.labels[index];
    }
    *correct = right;
    return now_ms() - start;
  }

 private:
  void check(adascale_status status, const char* what) const {
    if (status != ADASCALE_OK)
      throw ScenarioError(std::string(what) + " failed: " + adascale_last_error(w_.runtime));
  }
  const Workload& w_;
  int images_;
  size_t cursor_ = 0;
  int selected_ = -1;
  int threads_ = 0;
  std::vector<float> logits_;
  std::vector<std::string> names_;
};

// One request, as the run path timed it.
struct Frame {
  double start_ms = 0;  // since the timeline started
  double ms = 0;
  int branch = -1;
  int threads = 0;  // 0: the runtime's count
  int entry = -1;   // in the loop's estimates (per entry); the branch's own when it did not choose
  int correct = 0;
};

// The load and budgets in force from t_ms on, as the driver applied them.
struct StateChange {
  double t_ms = 0;
  int burners = 0;
  double balloon_mib = 0;
  RequestBudgets budgets;
  std::string text;
  bool contention = false;  // added load or tightened a budget
};

// The loop's context and predictions, as the driver sampled them at t_ms.
struct ContextRow {
  double t_ms = 0;
  double cpu = kNaN, others = kNaN, procs_running = kNaN, available_mib = kNaN, cache_rate = kNaN;
  double contention_factor = kNaN;
  std::vector<double> predicted_ms;    // per image, per branch; NaN when unknown
  std::vector<double> tail_ms;         // the same at the tail (profiler.h)
  std::vector<double> uncorrected_ms;  // contention-scaled catalog latency, no online correction
};

// What one policy produced, before it is written out.
struct PolicyRun {
  Policy policy;
  int fixed_branch = -1;
  std::vector<Frame> frames;
  std::vector<StateChange> changes;
  std::vector<ContextRow> context;
  int settled_branch = -1;  // the branch in use when the timeline started
  int settled_threads = 0;  // and its threads
  double cut_at_ms = -1;    // >= 0: the timeline ended here, at kMaxRecordedRequests
};

// The scenario's adaptation loop over the workload's branches, started with the initial budgets.
// Throws ScenarioError.
std::unique_ptr<AdaptationLoop> start_loop(const Scenario& s, const Workload& w);
// The loop's current branch; steps it once on this thread when it has not decided yet. Throws
// ScenarioError when it still has none.
LoopChoice loop_choice(AdaptationLoop& loop);

// A branch from begin_s (timeline seconds) on: the oracle's schedule.
struct ScheduledBranch {
  double begin_s = 0;
  int branch = -1;
};

// Runs the settle phase, then the timeline, on `fixed_branch`, else (when < 0) on the branch that
// `schedule` names for the time of each request (the settle phase runs the first one), else on
// the loop's choice. drive_load false: the timeline's burners and balloons are another app's to
// start (app_link.h); this run records them and applies the budget events only.
PolicyRun run_policy(const Scenario& s, const Workload& w, Policy policy, int fixed_branch,
                     bool verbose, const std::vector<ScheduledBranch>& schedule = {},
                     bool drive_load = true);

}  // namespace adascale::scenario
