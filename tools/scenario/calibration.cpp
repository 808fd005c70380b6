#include "tools/scenario/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>
#include <utility>

#include "base/statistics.h"
#include "runtime/adapt/context_monitor.h"
#include "tools/scenario/contention.h"
#include "tools/scenario/replay.h"
#include "tools/scenario/text_format.h"

namespace adascale::scenario {
namespace {

using LoadLevel = std::pair<int, double>;                       // burners, balloon MiB
using Samples = std::vector<std::vector<std::vector<double>>>;  // [level][branch] request ms

// The distinct load levels of the timeline, in order of first appearance.
std::vector<LoadLevel> load_levels(const std::vector<Segment>& segs) {
  std::vector<LoadLevel> levels;
  for (const Segment& seg : segs) {
    const LoadLevel level(seg.burners, seg.balloon_mib);
    if (std::find(levels.begin(), levels.end(), level) == levels.end()) levels.push_back(level);
  }
  return levels;
}

constexpr size_t kMinCalibrationRequests = 10;  // per branch and level
// Requests one slice of the interleaved calibration keeps, after one it does not: the first
// request after a change of branch runs on caches that another branch filled, which the replay
// pays once per switch and the calibration would otherwise pay every few requests.
constexpr int kSliceRequests = 3;

bool wants_more(const std::vector<double>& ms, double end_ms) {
  return (now_ms() < end_ms || ms.size() < kMinCalibrationRequests) &&
         ms.size() < kMaxCalibrationRequests;
}

// A few requests that are not kept: the first run of a branch prepares it.
void warm(int branch, const RunRequest& run) {
  for (int i = 0; i < 3; ++i) run(branch);
}

// Slices of `which` branches in turn, one request not kept (the switch) and kSliceRequests kept,
// while `wants` says a branch needs more.
void run_slices(std::vector<std::vector<double>>* ms, const std::vector<size_t>& which,
                const std::function<bool(const std::vector<double>&)>& wants,
                const RunRequest& run) {
  for (bool more = true; more;) {
    more = false;
    for (size_t b : which) {
      std::vector<double>& v = (*ms)[b];
      if (!wants(v)) continue;
      more = true;
      check_interrupt();
      run(static_cast<int>(b));
      for (int i = 0; i < kSliceRequests && v.size() < kMaxCalibrationRequests; ++i)
        v.push_back(run(static_cast<int>(b)));
    }
  }
}

// A share of requests over budget is implausible for a branch within the target when a branch
// exactly at the target would show as many or more in fewer than this share of samples.
constexpr double kPlausibleTail = 0.05;

// Every branch under every load level, for calibration_s (at least 10 requests) each, then the
// level's refinement.
Samples measure(const Scenario& s, const Workload& w, const std::vector<LoadLevel>& levels,
                const std::vector<Segment>& segs, double available_bytes, bool verbose) {
  Samples ms;
  FrameRunner runner(w, s.frame_images);
  int correct = 0;
  const RunRequest run = [&](int branch) { return runner.run(branch, w.fixed_threads, &correct); };
  for (const LoadLevel& level : levels) {
    ContentionProcesses processes;
    if (level.first > 0) processes.start_burners(level.first);
    if (level.second > 0) processes.allocate_balloon(level.second);
    ms.push_back(measure_level(w.costs.size(), s.calibration_s, s.calibration_interleaved, run));
    std::vector<Segment> own;
    for (const Segment& seg : segs)
      if (LoadLevel(seg.burners, seg.balloon_mib) == level) own.push_back(seg);
    const size_t refined =
        refine_level(&ms.back(), own, w.costs, available_bytes, s.violation_target_pct / 100,
                     s.calibration_refine_requests, run);
    if (verbose && refined > 0)
      std::fprintf(stderr, "[%s] calibration: %db/%.0fM: %zu branches refined to %zu requests\n",
                   s.name.c_str(), level.first, level.second, refined,
                   s.calibration_refine_requests);
    processes.stop_all();
  }
  return ms;
}

// Expected share of violating requests over the timeline, per branch: the segments' shares
// weighted by their durations.
std::vector<double> expected_violations(const Scenario& s, const Calibration& c) {
  std::vector<double> expected(c.share.empty() ? 0 : c.share.front().size(), 0);
  for (size_t i = 0; i < c.segments.size(); ++i)
    for (size_t b = 0; b < expected.size(); ++b)
      expected[b] += c.share[i][b] * (c.segments[i].end_s - c.segments[i].begin_s) / s.duration_s;
  return expected;
}

std::string calibration_table(const Workload& w, const std::vector<LoadLevel>& levels,
                              const Samples& ms, const std::vector<double>& expected, int chosen) {
  std::ostringstream table;
  table << "hindsight calibration (median request ms per load level; expected violations):\n";
  table << format("  %-24s", "branch");
  for (const auto& level : levels)
    table << format("  %9s", format("%db/%.0fM", level.first, level.second).c_str());
  table << "  expected  accuracy\n";
  for (size_t b = 0; b < w.costs.size(); ++b) {
    table << format("  %-24s", w.costs[b].name.c_str());
    for (size_t l = 0; l < levels.size(); ++l)
      table << format("  %9.2f", base::percentile(ms[l][b], 0.5));
    table << format("  %7.1f%%  %7.2f%%%s\n", 100 * expected[b],
                    100 * w.costs[b].accuracy.value_or(kNaN),
                    static_cast<int>(b) == chosen ? "  <- chosen" : "");
  }
  table << "  (load level: burners/balloon MiB)\n";
  return table.str();
}

}  // namespace

std::vector<std::vector<double>> measure_level(size_t branches, double calibration_s,
                                               bool interleaved, const RunRequest& run) {
  std::vector<std::vector<double>> ms(branches);
  if (!interleaved) {  // one block per branch, branch after branch
    for (size_t b = 0; b < branches; ++b) {
      warm(static_cast<int>(b), run);
      const double end = now_ms() + calibration_s * 1000;
      while (wants_more(ms[b], end)) {
        check_interrupt();
        ms[b].push_back(run(static_cast<int>(b)));
      }
    }
    return ms;
  }
  // every branch in turn, a slice at a time, until the level's time (calibration_s per branch)
  // is spent and every branch has its minimum
  std::vector<size_t> all(branches);
  for (size_t b = 0; b < branches; ++b) {
    all[b] = b;
    warm(static_cast<int>(b), run);
  }
  const double end = now_ms() + calibration_s * 1000 * static_cast<double>(branches);
  run_slices(
      &ms, all, [&](const std::vector<double>& v) { return wants_more(v, end); }, run);
  return ms;
}

bool share_plausible(size_t over, size_t n, double target) {
  if (over == 0 || target >= 1) return true;
  if (target <= 0 || over > n) return false;
  // P(X >= over) for X ~ Binomial(n, target) = 1 - P(X < over), from the pmf term by term
  const double q = 1 - target;
  double pmf = std::pow(q, static_cast<double>(n)), below = 0;
  for (size_t i = 0; i < over; ++i) {
    below += pmf;
    if (below > 1 - kPlausibleTail) return false;
    pmf *= static_cast<double>(n - i) / static_cast<double>(i + 1) * target / q;
  }
  return 1 - below >= kPlausibleTail;
}

std::vector<size_t> refinement_candidates(const std::vector<std::vector<double>>& shares,
                                          const std::vector<std::vector<double>>& level_ms,
                                          const std::vector<BranchCosts>& costs, double target,
                                          size_t requests) {
  auto accuracy = [&](size_t b) { return costs[b].accuracy.value_or(0); };
  std::vector<bool> wanted(costs.size(), false);
  for (const std::vector<double>& share : shares) {
    const auto pick = static_cast<size_t>(pick_branch(share, costs, target));
    for (size_t b = 0; b < costs.size(); ++b) {
      const size_t n = level_ms[b].size();
      if (n >= requests || accuracy(b) < accuracy(pick)) continue;
      const auto over = static_cast<size_t>(std::lround(share[b] * static_cast<double>(n)));
      if (share[b] < 1 && share_plausible(over, n, target)) wanted[b] = true;
    }
  }
  std::vector<size_t> out;
  for (size_t b = 0; b < wanted.size(); ++b)
    if (wanted[b]) out.push_back(b);
  return out;
}

size_t refine_level(std::vector<std::vector<double>>* level_ms,
                    const std::vector<Segment>& level_segments,
                    const std::vector<BranchCosts>& costs, double available_bytes, double target,
                    size_t requests, const RunRequest& run) {
  if (requests == 0 || level_segments.empty()) return 0;
  requests = std::min(requests, kMaxCalibrationRequests);
  const std::vector<LoadLevel> level{
      {level_segments.front().burners, level_segments.front().balloon_mib}};
  std::vector<bool> refined(costs.size(), false);
  // a round can move a segment's pick to a branch the last round did not refine: at most one
  // round per branch, each refining at least one
  for (size_t round = 0; round < costs.size(); ++round) {
    const Samples one{*level_ms};
    const std::vector<size_t> candidates =
        refinement_candidates(segment_shares(level_segments, level, one, costs, available_bytes),
                              *level_ms, costs, target, requests);
    if (candidates.empty()) break;
    run_slices(
        level_ms, candidates, [&](const std::vector<double>& v) { return v.size() < requests; },
        run);
    for (size_t b : candidates) refined[b] = true;
  }
  return static_cast<size_t>(std::count(refined.begin(), refined.end(), true));
}

double size_key(const BranchCosts& c) {
  if (c.macs) return *c.macs;
  if (c.latency_median_ms) return *c.latency_median_ms * 1e12;  // same order as MACs would give
  return c.memory_bytes.value_or(0);
}

int extreme_branch(const std::vector<BranchCosts>& costs, bool largest) {
  int best = 0;
  for (size_t i = 1; i < costs.size(); ++i) {
    const double a = size_key(costs[i]), b = size_key(costs[static_cast<size_t>(best)]);
    if (largest ? a > b : a < b) best = static_cast<int>(i);
  }
  return best;
}

// Memory limit (bytes) of a budget, given the memory available to this process.
double memory_limit_bytes(const RequestBudgets& b, double available_bytes) {
  switch (b.memory_mode) {
    case MemoryBudgetMode::kNone:
      return kInf;
    case MemoryBudgetMode::kAbsolute:
      return b.memory_mib * kMiB;
    case MemoryBudgetMode::kAvailableMinusMargin:
      return std::isnan(available_bytes) ? kInf
                                         : std::max(0.0, available_bytes - b.memory_mib * kMiB);
  }
  return kInf;
}

std::vector<std::vector<double>> segment_shares(const std::vector<Segment>& segs,
                                                const std::vector<LoadLevel>& levels,
                                                const Samples& ms,
                                                const std::vector<BranchCosts>& costs,
                                                double available_bytes) {
  std::vector<std::vector<double>> share(segs.size(), std::vector<double>(costs.size(), 0));
  for (size_t i = 0; i < segs.size(); ++i) {
    const Segment& seg = segs[i];
    const size_t l = static_cast<size_t>(
        std::find(levels.begin(), levels.end(), std::make_pair(seg.burners, seg.balloon_mib)) -
        levels.begin());
    const double limit = memory_limit_bytes(seg.budgets, available_bytes - seg.balloon_mib * kMiB);
    for (size_t b = 0; b < costs.size(); ++b) {
      if (costs[b].memory_bytes.value_or(0) > limit) {
        share[i][b] = 1;
        continue;
      }
      const std::vector<double>& v = ms[l][b];
      size_t over = 0;
      for (double x : v) over += x > seg.budgets.latency_ms;
      share[i][b] = v.empty() ? 1 : static_cast<double>(over) / v.size();
    }
  }
  return share;
}

int pick_branch(const std::vector<double>& share, const std::vector<BranchCosts>& costs,
                double target) {
  auto accuracy = [&](size_t b) { return costs[b].accuracy.value_or(0); };
  int within = -1, fewest = -1;
  for (size_t b = 0; b < share.size(); ++b) {
    const auto held = static_cast<size_t>(within);
    if (share[b] <= target && (within < 0 || accuracy(b) > accuracy(held)))
      within = static_cast<int>(b);
    const auto low = static_cast<size_t>(fewest);
    if (fewest < 0 || share[b] < share[low] ||
        (share[b] == share[low] && accuracy(b) > accuracy(low)))
      fewest = static_cast<int>(b);
  }
  return within >= 0 ? within : fewest;
}

Calibration calibrate(const Scenario& s, const Workload& w, bool verbose) {
  Calibration c;
  c.segments = segments(s);
  c.levels = load_levels(c.segments);
  ContextMonitor monitor;
  const ContextSample idle = monitor.sample_at(now_ms(), false);
  const double available_bytes =
      idle.available_memory_bytes() ? static_cast<double>(*idle.available_memory_bytes()) : kNaN;
  if (verbose)
    std::fprintf(stderr,
                 "[%s] calibration: measuring %zu branches under %zu load levels, %.1f s each\n",
                 s.name.c_str(), w.costs.size(), c.levels.size(), s.calibration_s);
  c.ms = measure(s, w, c.levels, c.segments, available_bytes, verbose);
  c.share = segment_shares(c.segments, c.levels, c.ms, w.costs, available_bytes);
  return c;
}

int hindsight_branch(const Scenario& s, const Workload& w, const Calibration& c,
                     std::string* report) {
  const std::vector<double> expected = expected_violations(s, c);
  const int chosen = pick_branch(expected, w.costs, s.violation_target_pct / 100);
  *report += calibration_table(w, c.levels, c.ms, expected, chosen);
  return chosen;
}

}  // namespace adascale::scenario
