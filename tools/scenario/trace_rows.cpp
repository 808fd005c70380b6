#include "tools/scenario/trace_rows.h"

#include <cmath>

#include "tools/scenario/calibration.h"

namespace adascale::scenario {

std::vector<TraceRow> join_trace(const PolicyRun& run, const Scenario& s, const Workload& w) {
  std::vector<TraceRow> rows;
  rows.reserve(run.frames.size());
  size_t state = 0, context = 0;
  const DeviceProfile profile;
  for (const Frame& f : run.frames) {
    while (state + 1 < run.changes.size() && run.changes[state + 1].t_ms <= f.start_ms) ++state;
    while (context + 1 < run.context.size() && run.context[context + 1].t_ms <= f.start_ms)
      ++context;
    TraceRow r{};
    r.frame = &f;
    r.state = &run.changes[state];
    r.context = run.context.empty() ? nullptr : &run.context[context];
    const RequestBudgets& b = r.state->budgets;
    r.budget_ms = b.latency_ms;
    const double available =
        r.context && !std::isnan(r.context->available_mib) ? r.context->available_mib * kMiB : kNaN;
    const double limit = memory_limit_bytes(b, available);
    r.memory_limit_mib = limit / kMiB;
    const BranchCosts& c = w.costs[static_cast<size_t>(f.branch)];
    r.violation = f.ms > b.latency_ms;
    r.memory_violation = c.memory_bytes && *c.memory_bytes > limit;
    const double cache_rate = r.context && !std::isnan(r.context->cache_rate)
                                  ? r.context->cache_rate
                                  : profile.default_cache_rate;
    r.energy_mj =
        s.frame_images * modelled_energy_mj(profile, c.int8, c.macs.value_or(0),
                                            c.memory_access_bytes.value_or(0), cache_rate);
    r.predicted_ms = r.predicted_tail_ms = r.predicted_uncorrected_ms = kNaN;
    // the prediction of what ran: the branch on its threads
    const int entry = f.entry >= 0 ? f.entry : f.branch;
    if (r.context && static_cast<size_t>(entry) < r.context->predicted_ms.size()) {
      const auto b = static_cast<size_t>(entry);
      r.predicted_ms = r.context->predicted_ms[b] * s.frame_images;
      r.predicted_tail_ms = r.context->tail_ms[b] * s.frame_images;
      r.predicted_uncorrected_ms = r.context->uncorrected_ms[b] * s.frame_images;
    }
    rows.push_back(r);
  }
  return rows;
}

}  // namespace adascale::scenario
