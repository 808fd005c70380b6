#include "runtime/adapt/selector.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace adascale {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

bool fits(double value, bool known, double limit, double scale) {
  if (limit == kInf) return true;
  return known && value <= limit * scale;  // an unknown cost never proves that it fits
}

// An estimate on more threads than are free would wait for a core: never a candidate.
bool allowed(const BranchEstimate& e, const SelectionContext& context) {
  return e.threads <= 1 || e.threads <= context.free_threads;
}

// Threads an estimate's inference uses (0, the session's own count, counts as one).
int threads_of(const BranchEstimate& e) { return std::max(1, e.threads); }

// An unknown latency must not look like the fastest one in a tie.
double tie_latency(const BranchEstimate& e) { return e.latency_known ? e.latency_ms : kInf; }

}  // namespace

const char* switch_reason_name(SwitchReason reason) {
  switch (reason) {
    case SwitchReason::kStay:
      return "stay";
    case SwitchReason::kInitial:
      return "initial";
    case SwitchReason::kInfeasible:
      return "infeasible";
    case SwitchReason::kBetter:
      return "better";
    case SwitchReason::kNothingFits:
      return "nothing-fits";
  }
  return "unknown";
}

Status validate_budgets(const Budgets& b) {
  auto bad = [](const std::string& message) {
    return error_status(ErrorCode::kInvalidArgument, message);
  };
  if (std::isnan(b.latency_ms) || b.latency_ms <= 0)
    return bad("latency budget must be > 0 ms (or infinite for none), got " +
               std::to_string(b.latency_ms));
  if (std::isnan(b.energy_mj) || b.energy_mj <= 0)
    return bad("energy budget must be > 0 mJ (or infinite for none), got " +
               std::to_string(b.energy_mj));
  if (b.memory_mode != MemoryBudgetMode::kNone) {
    if (!std::isfinite(b.memory_bytes) || b.memory_bytes < 0)
      return bad("memory budget must be a finite number of bytes >= 0, got " +
                 std::to_string(b.memory_bytes));
    if (b.memory_mode == MemoryBudgetMode::kAbsolute && b.memory_bytes == 0)
      return bad("memory budget of 0 bytes can never be met");
  }
  if (!std::isfinite(b.energy_weight) || b.energy_weight < 0)
    return bad("energy weight must be finite and >= 0, got " + std::to_string(b.energy_weight));
  if (b.battery_aware) {
    if (!std::isfinite(b.battery_energy_weight) || b.battery_energy_weight < 0)
      return bad("battery energy weight must be finite and >= 0");
    if (!(b.battery_low_pct >= 0 && b.battery_low_pct <= 100))
      return bad("battery low threshold must be within 0..100 percent");
  }
  return ok_status();
}

SelectionContext selection_context(const ContextSample& sample) {
  SelectionContext c;
  if (const auto available = sample.available_memory_bytes())
    c.available_memory_bytes = static_cast<double>(*available);
  c.battery_capacity_pct = sample.battery_capacity_pct;
  c.battery_discharging = sample.battery_discharging.value_or(false);
  return c;
}

Status Selector::set_budgets(const Budgets& budgets) {
  Status s = validate_budgets(budgets);
  if (!s.ok()) return s;
  const bool changed =
      budgets.latency_ms != budgets_.latency_ms || budgets.memory_mode != budgets_.memory_mode ||
      budgets.memory_bytes != budgets_.memory_bytes || budgets.energy_mj != budgets_.energy_mj ||
      budgets.energy_weight != budgets_.energy_weight ||
      budgets.battery_aware != budgets_.battery_aware ||
      budgets.battery_energy_weight != budgets_.battery_energy_weight ||
      budgets.battery_low_pct != budgets_.battery_low_pct;
  if (changed) improvements_ = 0;  // a new question: the dwell starts over
  budgets_ = budgets;
  return s;
}

Selector::Limits Selector::limits(const SelectionContext& context) const {
  Limits l{budgets_.latency_ms, kInf, budgets_.energy_mj, budgets_.energy_weight, false};
  if (budgets_.memory_mode == MemoryBudgetMode::kAbsolute) {
    l.memory = budgets_.memory_bytes;
  } else if (budgets_.memory_mode == MemoryBudgetMode::kAvailableMinusMargin) {
    // Unknown availability: no evidence of pressure, so no constraint.
    if (context.available_memory_bytes)
      l.memory = std::max(0.0, *context.available_memory_bytes - budgets_.memory_bytes);
  }
  if (budgets_.battery_aware && context.battery_discharging && context.battery_capacity_pct) {
    const double capacity = *context.battery_capacity_pct;
    l.energy_weight += budgets_.battery_energy_weight * (1.0 - capacity / 100.0);
    l.energy_only = capacity < budgets_.battery_low_pct;
  }
  return l;
}

double Selector::violation(const BranchEstimate& e, const Limits& l) const {
  double worst = 0;
  auto ratio = [&](double value, bool known, double limit) {
    if (limit == kInf) return;
    const double r = !known ? 2.0 : (limit > 0 ? value / limit : (value > 0 ? kInf : 0.0));
    worst = std::max(worst, r);
  };
  ratio(latency_of(e), e.latency_known, l.latency);
  ratio(e.memory_bytes, e.memory_known, l.memory);
  ratio(e.energy_mj, e.energy_known, l.energy);
  return worst;
}

bool Selector::blocked(int branch, double now_ms) const {
  return branch >= 0 && static_cast<size_t>(branch) < blocked_until_ms_.size() &&
         now_ms < blocked_until_ms_[static_cast<size_t>(branch)];
}

Decision Selector::decide(const std::vector<BranchEstimate>& estimates,
                          const SelectionContext& context, double now_ms) {
  Decision d;
  d.previous = current_;
  if (estimates.empty()) return d;
  if (current_ >= static_cast<int>(estimates.size())) current_ = -1;
  failures_.resize(estimates.size(), 0);
  blocked_until_ms_.resize(estimates.size(), 0);
  const Limits l = limits(context);
  bool context_changed = false;
  if (options_.context_change > 1 && context.contention > 0 && switch_contention_ > 0) {
    const double ratio = context.contention / switch_contention_;
    if (ratio >= options_.context_change || ratio <= 1 / options_.context_change) {
      if (changed_since_ms_ < 0) changed_since_ms_ = now_ms;
      context_changed = now_ms - changed_since_ms_ >= options_.context_settle_ms;
      if (context_changed) {
        // Backoffs learnt in the old context say nothing about the new one: a branch that
        // failed under a load that has ended must not keep the loop down for seconds.
        std::fill(failures_.begin(), failures_.end(), 0);
        std::fill(blocked_until_ms_.begin(), blocked_until_ms_.end(), 0.0);
        probe_misses_ = 0;
        next_probe_ms_ = -1;
        improvements_ = 0;
      }
    } else {
      changed_since_ms_ = -1;
    }
  }

  // the dwell doubles under load only: back at idle, getting up again must not wait, and the
  // next load starts from min_dwell_ms even when its start was not seen as a context change
  const bool contended = context.contention >= options_.probe_min_contention;
  if (!contended) {
    improvements_ = 0;
    load_since_ms_ = -1;
  } else if (load_since_ms_ < 0) {
    load_since_ms_ = now_ms;
  } else if (context_changed) {
    load_since_ms_ = std::max(load_since_ms_, changed_since_ms_);
  }
  auto objective = [&](const BranchEstimate& e) {
    if (l.energy_only) return -e.energy_mj;
    return e.accuracy - l.energy_weight * e.energy_mj;
  };
  auto feasible = [&](const BranchEstimate& e, bool is_current) {
    // The current branch keeps its place up to the budget itself; a newcomer must fit with a
    // margin, so a branch hovering at the limit does not flap in and out.
    const double scale = is_current ? 1.0 : 1.0 - options_.entry_margin;
    return fits(latency_of(e), e.latency_known, l.latency, scale) &&
           fits(e.memory_bytes, e.memory_known, l.memory, scale) &&
           fits(e.energy_mj, e.energy_known, l.energy, scale);
  };
  // best: over every feasible branch; open: without those backing off (improvement switches).
  // Two passes: the top objective, then the fastest branch within objective_tolerance of it (then
  // the higher objective, then the lower index), so that a tenth of a point of held-out accuracy,
  // which is noise, does not buy a slower branch. Order-independent, so the result never depends
  // on iteration. The tolerance is in accuracy units: an energy-only objective uses none.
  const double tolerance = l.energy_only ? 0.0 : options_.objective_tolerance;
  // a step up under load wants a tail the branch has shown here (evidence_under_load)
  const bool step_up_needs_evidence = contended && options_.evidence_under_load;
  // feasibility and objective once per branch; both passes of both picks read them
  // (member buffers: no allocation per decision once sized)
  const size_t n = estimates.size();
  std::vector<double>& score = scores_;
  std::vector<char>& fits_now = fits_;
  score.resize(n);
  fits_now.resize(n);
  for (size_t i = 0; i < n; ++i) {
    score[i] = objective(estimates[i]);
    fits_now[i] =
        allowed(estimates[i], context) && feasible(estimates[i], static_cast<int>(i) == current_);
  }
  struct Pick {
    int branch = -1;
    double top = 0;  // the top objective among the eligible branches
  };
  auto pick = [&](bool open_only) {
    auto eligible = [&](size_t i) {
      const int index = static_cast<int>(i);
      if (!fits_now[i]) return false;
      if (!open_only || index == current_) return true;
      return !blocked(index, now_ms) && (!step_up_needs_evidence || estimates[i].tail_own);
    };
    Pick p;
    double top = -kInf;
    for (size_t i = 0; i < n; ++i)
      if (eligible(i)) top = std::max(top, score[i]);
    for (size_t i = 0; i < n; ++i) {
      if (!eligible(i) || score[i] < top - tolerance) continue;
      if (p.branch >= 0) {
        const size_t c = static_cast<size_t>(p.branch);
        const int threads = threads_of(estimates[i]), chosen_threads = threads_of(estimates[c]);
        if (threads > chosen_threads) continue;
        const double latency = tie_latency(estimates[i]),
                     chosen_latency = tie_latency(estimates[c]);
        if (threads == chosen_threads &&
            (latency > chosen_latency || (latency == chosen_latency && score[i] <= score[c])))
          continue;
      }
      p.branch = static_cast<int>(i);
    }
    p.top = top;
    return p;
  };
  const int best = pick(false).branch;
  const Pick open_pick = pick(true);
  const int open = open_pick.branch;

  auto choose = [&](int branch, SwitchReason reason) {
    d.branch = branch;
    d.switched = branch != current_;
    d.reason = d.switched ? reason : SwitchReason::kStay;
    if (d.switched) {
      if (current_ >= 0 && options_.trial_window_ms > 0) {
        // Leaving a branch that an improvement switch entered and that did not hold: back off.
        const size_t left = static_cast<size_t>(current_);
        const bool failed_trial =
            (reason == SwitchReason::kInfeasible || reason == SwitchReason::kNothingFits) &&
            current_reason_ == SwitchReason::kBetter &&
            now_ms - last_switch_ms_ <= options_.trial_window_ms;
        failures_[left] = failed_trial ? std::min(failures_[left] + 1, 3) : 0;
        blocked_until_ms_[left] =
            failed_trial ? now_ms + options_.min_dwell_ms * (1 << failures_[left]) : 0;
        // a probe that did not hold: the next one waits twice as long as the last
        if (probed_ == current_) {
          probe_misses_ = failed_trial ? std::min(probe_misses_ + 1, 3) : 0;
          if (failed_trial)
            next_probe_ms_ = now_ms + options_.probe_interval_ms * (1 << probe_misses_);
        }
      }
      probed_ = -1;
      if (reason == SwitchReason::kBetter && contended)
        improvements_ = std::min(improvements_ + 1, 30);
      current_ = branch;
      current_reason_ = reason;
      last_switch_ms_ = now_ms;
      switch_contention_ = context.contention;
      changed_since_ms_ = -1;
    }
    d.objective = score[static_cast<size_t>(branch)];
    return d;
  };

  if (best < 0) {
    // Nothing fits: the least violating branch, ties to the faster one, then the lower index.
    int cheapest = -1;
    double cheapest_violation = kInf;
    for (size_t i = 0; i < estimates.size(); ++i) {
      if (!allowed(estimates[i], context)) continue;
      const double v = violation(estimates[i], l);
      if (cheapest < 0 || v < cheapest_violation ||
          (v == cheapest_violation &&
           tie_latency(estimates[i]) < tie_latency(estimates[static_cast<size_t>(cheapest)]))) {
        cheapest = static_cast<int>(i);
        cheapest_violation = v;
      }
    }
    d.nothing_fits = true;
    if (cheapest < 0) return d;  // every estimate wants more threads than are free
    return choose(cheapest, SwitchReason::kNothingFits);
  }
  if (current_ < 0) return choose(best, SwitchReason::kInitial);
  const size_t cur = static_cast<size_t>(current_);
  if (!fits_now[cur]) return choose(best, SwitchReason::kInfeasible);
  const int doublings =
      contended ? std::clamp(std::min(improvements_, options_.dwell_doublings), 0, 16) : 0;
  const bool dwelled =
      now_ms - last_switch_ms_ >= options_.min_dwell_ms * (1 << doublings) || context_changed;
  // the margin is judged on the top objective: the target may be a faster near-equal of it
  if (open >= 0 && open != current_ && dwelled &&
      open_pick.top >= score[cur] + options_.switch_margin)
    return choose(open, SwitchReason::kBetter);
  const int probe = probe_target(estimates, l, context, now_ms, dwelled);
  if (probe >= 0) {
    next_probe_ms_ = now_ms + options_.probe_interval_ms * (1 << probe_misses_);
    choose(probe, SwitchReason::kBetter);
    probed_ = probe;
    return d;
  }
  return choose(current_, SwitchReason::kStay);
}

int Selector::probe_target(const std::vector<BranchEstimate>& estimates, const Limits& l,
                           const SelectionContext& context, double now_ms, bool dwelled) const {
  if (!(options_.probe_headroom >= 1) || !dwelled || current_ < 0 || l.latency == kInf ||
      context.contention < options_.probe_min_contention || now_ms < next_probe_ms_ ||
      now_ms - load_since_ms_ < options_.probe_delay_ms)
    return -1;
  const double entry = 1.0 - options_.entry_margin;
  const double current_score = scores_[static_cast<size_t>(current_)];
  // the least demanding of the candidates: a step up, not a leap
  int target = -1;
  for (size_t i = 0; i < estimates.size(); ++i) {
    const BranchEstimate& e = estimates[i];
    const int index = static_cast<int>(i);
    if (index == current_ || blocked(index, now_ms) || !e.latency_known || !allowed(e, context))
      continue;
    if (scores_[i] < current_score + options_.switch_margin) continue;
    if (e.latency_ms > l.latency * entry || latency_of(e) > l.latency * options_.probe_headroom)
      continue;
    if (!fits(e.memory_bytes, e.memory_known, l.memory, entry) ||
        !fits(e.energy_mj, e.energy_known, l.energy, entry))
      continue;
    if (target < 0 || latency_of(e) < latency_of(estimates[static_cast<size_t>(target)]))
      target = index;
  }
  return target;
}

}  // namespace adascale
