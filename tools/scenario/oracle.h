// Internal to the scenario replayer (scenario_run.h): the oracle policy. For every segment of the
// timeline (load and budgets constant) it runs the most accurate branch whose violations, as the
// calibration pass measured them under that segment's load, stay within the scenario's target
// (violation_target_pct), switching at the segment boundaries at no cost. It knows the script
// and every branch's latency under each load in advance, so no causal policy can reach it: the
// summary reports every policy's accuracy gap to it.
#pragma once

#include <string>
#include <vector>

#include "tools/scenario/calibration.h"
#include "tools/scenario/replay.h"

namespace adascale::scenario {

// The branch per segment from the calibration's shares ([segment][branch], fractions):
// pick_branch of each segment (the most accurate within `target`, else the fewest violations).
std::vector<int> oracle_branches(const std::vector<std::vector<double>>& share,
                                 const std::vector<BranchCosts>& costs, double target);

// The oracle's schedule for run_policy; appends a table (one line per segment) to `report`.
std::vector<ScheduledBranch> oracle_schedule(const Scenario& s, const Workload& w,
                                             const Calibration& c, std::string* report);

}  // namespace adascale::scenario
