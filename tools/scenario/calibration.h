// Internal to the scenario replayer (scenario_run.h): the static policies' branches, largest,
// smallest and the best single branch in hindsight, and the calibration pass (every branch
// measured under every load level of the timeline) that the hindsight and oracle policies share.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tools/scenario/scenario_run.h"

namespace adascale::scenario {

// What orders branches by size: MACs, else the catalog latency, else the memory.
double size_key(const BranchCosts& c);
// The branch with the most (largest) or the fewest size_key.
int extreme_branch(const std::vector<BranchCosts>& costs, bool largest);
// Memory limit (bytes) of a budget, given the memory available to this process.
double memory_limit_bytes(const RequestBudgets& b, double available_bytes);

// The calibration pass, measured once per run for the policies that need it.
struct Calibration {
  std::vector<Segment> segments;
  std::vector<std::pair<int, double>> levels;        // burners, balloon MiB
  std::vector<std::vector<std::vector<double>>> ms;  // [level][branch] request ms
  std::vector<std::vector<double>> share;            // [segment][branch] share over budget
};
// Runs one request on a branch and returns its wall time in ms.
using RunRequest = std::function<double(int branch)>;
// The requests of `branches` branches at one load level, [branch][request] ms, each branch
// warmed first by three that are not kept: calibration_s of them per branch (at least 10), in
// one block per branch, or interleaved (Scenario::calibration_interleaved): slices of three, each
// after one not kept, every branch in turn over the level's whole time.
std::vector<std::vector<double>> measure_level(size_t branches, double calibration_s,
                                               bool interleaved, const RunRequest& run);

// Whether `over` of `n` requests over budget could come from a branch whose true share is
// `target` (a fraction): one exactly at the target shows as many or more in at least 5% of
// samples of n.
bool share_plausible(size_t over, size_t n, double target);
// The branches of one load level that need more requests, from the level's per segment shares
// ([segment][branch], segment_shares) and requests ([branch] ms): for each segment, every branch
// at least as accurate as its pick (pick_branch) whose share is still plausibly within `target`,
// with fewer than `requests` kept. Sorted.
std::vector<size_t> refinement_candidates(const std::vector<std::vector<double>>& shares,
                                          const std::vector<std::vector<double>>& level_ms,
                                          const std::vector<BranchCosts>& costs, double target,
                                          size_t requests);
// About a dozen requests per branch cannot tell a share of 2% from one of 20%, and the oracle
// takes the most accurate of many branches that passed: the winner's curse. So after a level's
// first pass, the refinement_candidates of its segments (`level_segments`, all of that level)
// run in slices, in turn, until each has `requests` kept, and again while the new shares bring up
// new candidates. Returns how many branches were refined; 0 requests: none.
size_t refine_level(std::vector<std::vector<double>>* level_ms,
                    const std::vector<Segment>& level_segments,
                    const std::vector<BranchCosts>& costs, double available_bytes, double target,
                    size_t requests, const RunRequest& run);

// Measures every branch under every load level for calibration_s (at least 10 requests), then
// refines each level (calibration_refine_requests). A
// segment's share for a branch: that of its level's requests above the segment's latency
// budget, or 1 when the branch's peak memory exceeds the segment's memory limit.
Calibration calibrate(const Scenario& s, const Workload& w, bool verbose);
// Per segment share from measured requests (no timing: the unit tests call it directly).
std::vector<std::vector<double>> segment_shares(
    const std::vector<Segment>& segs, const std::vector<std::pair<int, double>>& levels,
    const std::vector<std::vector<std::vector<double>>>& ms, const std::vector<BranchCosts>& costs,
    double available_bytes);

// The most accurate branch (catalog accuracy) whose share is at most `target` (a fraction);
// when none is, the one with the lowest share (of equal ones, the most accurate).
int pick_branch(const std::vector<double>& share, const std::vector<BranchCosts>& costs,
                double target);
// The hindsight branch: see scenario_run.h. Appends the calibration table to `report`.
int hindsight_branch(const Scenario& s, const Workload& w, const Calibration& c,
                     std::string* report);

}  // namespace adascale::scenario
