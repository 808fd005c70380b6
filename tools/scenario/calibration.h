// Internal to the scenario replayer (scenario_run.h): the static policies' branches, largest,
// smallest and the best single branch in hindsight (calibrated under every load level).
#pragma once

#include <string>
#include <vector>

#include "tools/scenario/scenario_run.h"

namespace adascale::scenario {

// What orders branches by size: MACs, else the catalog latency, else the memory.
double size_key(const BranchCosts& c);
// The branch with the most (largest) or the fewest size_key.
int extreme_branch(const std::vector<BranchCosts>& costs, bool largest);
// Memory limit (bytes) of a budget, given the memory available to this process.
double memory_limit_bytes(const RequestBudgets& b, double available_bytes);
// The hindsight branch: see scenario_run.h. Appends the calibration table to `report`.
int calibrate_hindsight(const Scenario& s, const Workload& w, bool verbose, std::string* report);

}  // namespace adascale::scenario
