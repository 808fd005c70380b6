#include "tools/scenario/oracle.h"

#include <cmath>

#include "tools/scenario/text_format.h"

namespace adascale::scenario {

std::vector<int> oracle_branches(const std::vector<std::vector<double>>& share,
                                 const std::vector<BranchCosts>& costs, double target) {
  std::vector<int> out;
  out.reserve(share.size());
  for (const std::vector<double>& segment : share)
    out.push_back(pick_branch(segment, costs, target));
  return out;
}

std::vector<ScheduledBranch> oracle_schedule(const Scenario& s, const Workload& w,
                                             const Calibration& c, std::string* report) {
  const double target = s.violation_target_pct / 100;
  const std::vector<int> chosen = oracle_branches(c.share, w.costs, target);
  std::vector<ScheduledBranch> schedule;
  *report += format("oracle: per segment, the most accurate branch within %g%% violations:\n",
                    s.violation_target_pct);
  for (size_t i = 0; i < c.segments.size(); ++i) {
    const Segment& seg = c.segments[i];
    const auto b = static_cast<size_t>(chosen[i]);
    schedule.push_back({seg.begin_s, chosen[i]});
    const double budget = seg.budgets.latency_ms;
    const std::string level = format("%db/%.0fM", seg.burners, seg.balloon_mib);
    *report +=
        format("  %6.2f-%6.2f s  %-9s  budget %8s ms  %-24s %5.1f%%%s\n", seg.begin_s, seg.end_s,
               level.c_str(), std::isfinite(budget) ? format("%.2f", budget).c_str() : "none",
               w.costs[b].name.c_str(), 100 * c.share[i][b],
               c.share[i][b] > target ? "  (none within the target: the fewest)" : "");
  }
  return schedule;
}

}  // namespace adascale::scenario
