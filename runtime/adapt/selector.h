// Selector: picks the branch to run from the profiler's estimates under latency, memory and
// energy budgets, with hysteresis and a minimum dwell time so that noise does not cause thrashing.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "runtime/adapt/profiler.h"
#include "runtime/graph.h"

namespace adascale {

enum class MemoryBudgetMode {
  kNone,                  // no memory constraint
  kAbsolute,              // memory_bytes is the limit
  kAvailableMinusMargin,  // limit = available memory (MemAvailable, cgroup) - memory_bytes
};

struct Budgets {
  double latency_ms = std::numeric_limits<double>::infinity();  // inf: none
  MemoryBudgetMode memory_mode = MemoryBudgetMode::kNone;
  double memory_bytes = 0;                                     // limit or margin, see the mode
  double energy_mj = std::numeric_limits<double>::infinity();  // per inference; inf: none
  // Objective = accuracy - energy_weight * energy_mJ (0: accuracy alone).
  double energy_weight = 0;
  // Battery-aware policy: while discharging, the weight grows by battery_energy_weight as the
  // battery drains (x (1 - capacity/100)); below battery_low_pct the objective is energy alone.
  bool battery_aware = false;
  double battery_energy_weight = 1.0;
  double battery_low_pct = 15;
};

// Rejects NaN, negative, zero (impossible) limits and unusable weights with a message.
Status validate_budgets(const Budgets& budgets);

struct SelectorOptions {
  double switch_margin = 0.005;  // an improvement must beat the current objective by this much
  // Objectives this close to the best count as equal and go to the faster branch: held-out
  // accuracy differences of a tenth of a point are measurement noise (accuracy units; an
  // energy-only objective uses no tolerance).
  double objective_tolerance = 0.002;
  double entry_margin = 0.05;  // a new branch must fit within (1 - entry_margin) of a budget
  double min_dwell_ms = 500;   // no improvement switch sooner than this after the last switch
  // Under load (contention at least probe_min_contention), each improvement switch (probes
  // included) since the context last changed doubles the dwell before the next one, up to this
  // many times: in one load the first step up is what the loop learnt, further ones are mostly
  // noise in near-equal estimates, and each that does not hold costs a switch back. A context
  // change, new budgets or a decision at idle start again at min_dwell_ms.
  int dwell_doublings = 2;
  // Under load, an improvement switch goes only to a branch whose tail estimate rests on its own
  // observations at the current level (BranchEstimate::tail_own). A branch not yet seen at a
  // level is judged on what other branches saw there, and in the traces such a step up was
  // mostly left again a decision or two later: two switches for nothing. A probe (below) is
  // what gathers those observations, at most once per interval.
  bool evidence_under_load = true;
  // Judge the latency budget on the tail estimate (latency_tail_ms) instead of the median one:
  // for budgets that bound the share of slow requests rather than the typical one.
  bool tail_latency = false;
  // Backoff against trial and error: a branch that turns out infeasible within trial_window_ms of
  // an improvement switch to it is not the target of another improvement switch for min_dwell_ms x
  // 2^failures (consecutive such failures, at most 3). 0 disables it.
  double trial_window_ms = 2000;
  // A context change waives the dwell: once the contention factor has stood at least
  // context_change times above or below its value at the last switch for context_settle_ms, an
  // improvement switch may follow at once. The dwell is there against noise in one context, not
  // to keep a branch chosen for a load that is gone. 0 disables it.
  double context_change = 1.4;
  double context_settle_ms = 150;
  // Probing under load: while the contention factor is at least probe_min_contention, a more
  // accurate branch whose median latency fits (with the entry margin) and whose judged latency
  // is at most probe_headroom x the budget is tried for one decision, at most once per
  // probe_interval_ms x 2^misses (consecutive probes that did not hold, at most 3). Its own
  // observations then decide whether it stays. The spread of a contended level is learnt on the
  // branch that runs, so without a try the larger branches keep the prediction the load made for
  // the small one. At 1 a probe goes to a branch whose estimate fits but rests on no
  // observations of its own here (evidence_under_load); a headroom above 1 also tries branches
  // predicted to miss, which in the traces mostly came back a decision later. Below 1: no probes.
  double probe_headroom = 1.0;
  double probe_interval_ms = 4000;
  double probe_min_contention = 1.25;
  // The first probe of a load waits this long after the load began (the first contended
  // decision, or a context change under load): a probe that does not hold costs two switches,
  // and one into a load that ends a moment later gains little. 0: only the dwell applies.
  double probe_delay_ms = 4000;
};

enum class SwitchReason {
  kStay,         // no change
  kInitial,      // first decision
  kInfeasible,   // the current branch no longer fits the budgets
  kBetter,       // a feasible branch improves the objective by more than the margin
  kNothingFits,  // no branch fits: the least violating one runs
};
const char* switch_reason_name(SwitchReason reason);

// What the selector needs from the context besides the estimates.
struct SelectionContext {
  std::optional<double> available_memory_bytes;
  std::optional<double> battery_capacity_pct;
  bool battery_discharging = false;
  double contention = 1;  // the profiler's total contention factor for this moment
  // Threads an inference may use now (the cores others leave free, at least 1): an estimate of
  // more threads than this is never chosen, so an inference does not wait for a core.
  int free_threads = std::numeric_limits<int>::max();
};
SelectionContext selection_context(const ContextSample& sample);

struct Decision {
  int branch = -1;
  int previous = -1;
  bool switched = false;
  SwitchReason reason = SwitchReason::kStay;
  bool nothing_fits = false;  // the chosen branch is predicted to violate a budget
  double objective = 0;
};

class Selector {
 public:
  explicit Selector(SelectorOptions options = {}) : options_(options) {}
  Status set_budgets(const Budgets& budgets);
  const Budgets& budgets() const { return budgets_; }
  const SelectorOptions& options() const { return options_; }

  // Deterministic: objectives within objective_tolerance of the best go to fewer threads (an
  // inference on more threads only where fewer do not fit: the cores stay free for the rest of
  // the device, and a change of threads under load is a switch), then the lower predicted
  // latency, then the higher objective, then the lower index.
  Decision decide(const std::vector<BranchEstimate>& estimates, const SelectionContext& context,
                  double now_ms);
  int current() const { return current_; }
  // Forgets the current branch (the next decision is an initial one) and every backoff.
  void reset() {
    current_ = -1;
    changed_since_ms_ = -1;
    failures_.clear();
    blocked_until_ms_.clear();
    probe_misses_ = 0;
    next_probe_ms_ = -1;
    probed_ = -1;
    improvements_ = 0;
    load_since_ms_ = -1;
  }
  // True while `branch` may not be the target of an improvement switch (trial_window_ms).
  bool blocked(int branch, double now_ms) const;

 private:
  struct Limits {
    double latency, memory, energy, energy_weight;
    bool energy_only;
  };
  Limits limits(const SelectionContext& context) const;
  // Largest predicted / limit ratio over the active constraints (unknown costs count as 2).
  double violation(const BranchEstimate& e, const Limits& limits) const;
  // The branch to probe now (probe_headroom), or -1.
  int probe_target(const std::vector<BranchEstimate>& estimates, const Limits& limits,
                   const SelectionContext& context, double now_ms, bool dwelled) const;
  double latency_of(const BranchEstimate& e) const {
    return options_.tail_latency ? e.latency_tail_ms : e.latency_ms;
  }

  SelectorOptions options_;
  Budgets budgets_;
  int current_ = -1;
  double last_switch_ms_ = 0;
  SwitchReason current_reason_ = SwitchReason::kStay;  // how the current branch was entered
  double switch_contention_ = 1;                       // contention at the last switch
  double changed_since_ms_ = -1;  // since when it stands context_change away from it; -1: not
  std::vector<int> failures_;     // per branch, see trial_window_ms
  std::vector<double> scores_;    // per branch, this decision's objective
  std::vector<char> fits_;        // per branch, this decision's feasibility
  std::vector<double> blocked_until_ms_;
  int probe_misses_ = 0;       // consecutive probes that turned infeasible within the window
  double next_probe_ms_ = -1;  // no probe before; -1: none yet
  int probed_ = -1;            // the branch the last probe entered, while it is current
  int improvements_ = 0;       // improvement switches since the context changed (dwell_doublings)
  double load_since_ms_ = -1;  // when the current load began (probe_delay_ms); -1: no load
};

}  // namespace adascale
