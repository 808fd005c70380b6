#include "tools/scenario/summary_tables.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "base/statistics.h"
#include "tools/scenario/calibration.h"
#include "tools/scenario/relative_budget.h"
#include "tools/scenario/text_format.h"

namespace adascale::scenario {

StepOutcome classify_step(double begin, double end, const std::vector<StepRequest>& requests,
                          const std::vector<StepSwitch>& switches, size_t evidence) {
  StepOutcome out;
  for (const StepSwitch& sw : switches)
    if (sw.t_ms >= begin && sw.t_ms < end && sw.down) {
      out.down = &sw;
      break;
    }
  // the branch running into the step (the last one started before it, else the first after it)
  // and its first requests after the step, until any switch
  for (const StepRequest& r : requests) {
    if (r.start_ms < begin) {
      out.running = r.branch;
      continue;
    }
    if (out.running < 0) out.running = r.branch;
    if (r.start_ms >= end || r.branch != out.running || out.seen == evidence) break;
    ++out.seen;
    out.missed += r.violation;
  }
  out.needed = out.missed > 0 || (out.down && out.seen == 0);
  return out;
}

PolicySummary summarize(const PolicyRun& run, const std::vector<TraceRow>& rows, const Scenario& s,
                        const Workload& w) {
  PolicySummary sum;
  sum.policy = run.policy;
  sum.branch = run.fixed_branch >= 0           ? w.costs[static_cast<size_t>(run.fixed_branch)].name
               : run.policy == Policy::kOracle ? "(segments)"
                                               : "(adaptive)";
  std::vector<double> latencies;
  int previous = run.settled_branch;
  int previous_threads = run.settled_threads;  // a change of threads alone is a switch too
  std::vector<StepSwitch> switches;
  std::vector<StepRequest> requests;
  for (const TraceRow& r : rows) {
    requests.push_back({r.frame->start_ms, r.frame->branch, r.violation});
    ++sum.requests;
    sum.images += static_cast<size_t>(s.frame_images);
    sum.violations += r.violation;
    sum.memory_violations += r.memory_violation;
    sum.correct += static_cast<size_t>(r.frame->correct);
    sum.energy_mj += r.energy_mj;
    latencies.push_back(r.frame->ms);
    if (r.frame->branch != previous || r.frame->threads != previous_threads)
      switches.push_back({r.frame->start_ms, previous, r.frame->branch,
                          size_key(w.costs[static_cast<size_t>(r.frame->branch)]) <
                              size_key(w.costs[static_cast<size_t>(previous)])});
    previous = r.frame->branch;
    previous_threads = r.frame->threads;
  }
  sum.switches = switches.size();
  sum.median_latency_ms = base::percentile(latencies, 0.5);
  sum.p99_latency_ms = base::percentile(latencies, 0.99);
  // Contention steps: changes at one time form one step; it counts when any of them added load or
  // tightened a budget. It needs a switch when the branch running into it misses the budget on one
  // of its first kEvidence requests after it (or the loop switched before any request started).
  // Its delay: to the first request on a smaller branch (fewer MACs) before the next change; an
  // upgrade right after a step is not a reaction to it, and a switch down that no violation
  // called for is listed but not timed.
  constexpr size_t kEvidence = 5;
  std::vector<double> delays;
  for (size_t i = 1; i < run.changes.size(); ++i) {
    if (i > 1 && run.changes[i].t_ms == run.changes[i - 1].t_ms) continue;  // counted with i-1
    bool contention = false;
    std::string what;
    size_t j = i;
    for (; j < run.changes.size() && run.changes[j].t_ms == run.changes[i].t_ms; ++j) {
      contention = contention || run.changes[j].contention;
      what += (what.empty() ? "" : ", ") + run.changes[j].text;
    }
    if (!contention) continue;
    ++sum.contention_steps;
    const double begin = run.changes[i].t_ms;
    const double end = j < run.changes.size() ? run.changes[j].t_ms : kInf;
    const StepOutcome step = classify_step(begin, end, requests, switches, kEvidence);
    sum.steps_needing_switch += step.needed;
    auto name = [&](int branch) { return w.costs[static_cast<size_t>(branch)].name.c_str(); };
    std::string outcome;
    if (step.down) {
      const double delay = step.down->t_ms - begin;
      outcome = format("%s -> %s after %.0f ms", name(step.down->from), name(step.down->to), delay);
      if (step.needed)
        delays.push_back(delay);
      else
        outcome += format(" (not needed: no violation on the %zu request%s before it)", step.seen,
                          step.seen == 1 ? "" : "s");
    } else if (step.needed) {
      outcome = format("no switch down, although %s missed the budget on %zu of %zu requests",
                       name(step.running), step.missed, step.seen);
    } else {
      outcome =
          format("no switch down (none needed: no violation on the first %zu requests)", step.seen);
    }
    sum.steps_report +=
        format("  t=%6.2f s  %-40s %s\n", begin / 1000, what.c_str(), outcome.c_str());
  }
  sum.steps_followed_by_switch = delays.size();
  if (!delays.empty()) sum.median_step_to_switch_ms = base::percentile(delays, 0.5);
  return sum;
}

std::string format_summary(const Scenario& s, const std::vector<PolicySummary>& summaries) {
  auto accuracy = [](const PolicySummary& p) {
    return p.images ? 100.0 * p.correct / p.images : 0.0;
  };
  const PolicySummary* oracle = nullptr;
  for (const PolicySummary& p : summaries)
    if (p.policy == Policy::kOracle) oracle = &p;
  std::ostringstream o;
  o << format("scenario %s: %.1f s, requests of %d images, latency budget %s ms per request\n",
              s.name.c_str(), s.duration_s, s.frame_images, describe_latency_budget(s).c_str());
  o << format("%-10s %-14s %8s %8s %10s %8s %9s %8s %14s %9s %9s %10s %18s\n", "policy", "branch",
              "requests", "images", "violations", "mem-viol", "accuracy", "switches",
              "step->switch", "p50 ms", "p99 ms", "mJ/request", "gap to oracle (pt)");
  for (const PolicySummary& p : summaries) {
    const double requests = std::max<size_t>(p.requests, 1);
    std::string step = "-";
    if (p.policy == Policy::kAdaptive)
      step = p.median_step_to_switch_ms >= 0
                 ? format("%.0f ms (%zu/%zu)", p.median_step_to_switch_ms,
                          p.steps_followed_by_switch, p.steps_needing_switch)
                 : format("none (0/%zu)", p.steps_needing_switch);
    const std::string gap = oracle ? format("%.2f", accuracy(*oracle) - accuracy(p)) : "-";
    o << format("%-10s %-14s %8zu %8zu %9.2f%% %7.2f%% %8.2f%% %8zu %14s %9.2f %9.2f %10.3f %18s\n",
                policy_name(p.policy), p.branch.c_str(), p.requests, p.images,
                100.0 * p.violations / requests, 100.0 * p.memory_violations / requests,
                accuracy(p), p.switches, step.c_str(), p.median_latency_ms, p.p99_latency_ms,
                p.energy_mj / requests, gap.c_str());
  }
  // one parseable line (scripts/random_scenarios.sh): how often each policy switched per step
  std::string per_step;
  for (const PolicySummary& p : summaries)
    per_step +=
        format(" %s %s", policy_name(p.policy),
               p.contention_steps
                   ? format("%.2f", static_cast<double>(p.switches) / p.contention_steps).c_str()
                   : "-");
  if (!summaries.empty())
    o << format("switches per contention step (%zu steps):", summaries.front().contention_steps)
      << per_step << "\n";
  return o.str();
}

}  // namespace adascale::scenario
