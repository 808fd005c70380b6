// Contention scenarios for adascale-run --scenario: a small strict INI file (docs/scenarios.md)
// with the duration, the request (frame) size, the initial budgets, the adaptation loop's
// settings and a timeline of scripted events: CPU burner processes, memory balloons, budget
// changes. Parsing is strict: an unknown section or key, a malformed value or an impossible
// timeline is one ScenarioError naming the file, the line and the key.
#pragma once

#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/adapt/adaptation_loop.h"

namespace adascale::scenario {

struct ScenarioError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What a scenario may ask for (docs/scenarios.md, "Limits"). Each one bounds the memory or the
// time that a typo or a hostile file could otherwise make unbounded; the parser refuses a file
// past any of them before anything runs.
constexpr double kMinDurationS = 0.1;
constexpr double kMaxDurationS = 3600;  // one hour of timeline per policy
constexpr double kMaxSettleS = 600;
constexpr double kMaxCalibrationS = 60;  // per branch and load level
constexpr double kMinPeriodMs = 10;      // the loop samples (and the trace records) at most 100/s
constexpr double kMaxPeriodMs = 60000;
constexpr int kMaxFrameImages = 1 << 16;
constexpr size_t kMaxEvents = 1000;
constexpr int kMaxBurners = 256;                 // running at once
constexpr int kMaxBalloons = 16;                 // held at once
constexpr double kMaxBalloonMib = 64 * 1024;     // all balloons held at once (and the machine's
                                                 // physical memory, checked before a run)
constexpr double kMaxMemoryBudgetMib = 1 << 20;  // 1 TiB
constexpr double kMinLatencyBudgetMs = 0.001;
constexpr size_t kMaxNameLength = 64;
constexpr size_t kMaxLineLength = 4096;
constexpr size_t kMaxFileBytes = 1 << 20;
// Requests a policy records; a run that reaches it ends its timeline there (scenario_run.h).
constexpr size_t kMaxRecordedRequests = size_t{1} << 21;
constexpr size_t kMaxCalibrationRequests = size_t{1} << 16;  // per branch and load level
constexpr int kMaxRefineRequests = 10000;  // calibration_refine_requests, per branch and level

// True for a name usable as one path component of the output files: 1 to kMaxNameLength
// characters of [A-Za-z0-9._-], not "." or "..".
bool valid_name(const std::string& name);

// Budgets as the scenario states them: latency and energy per request (frame), memory per branch.
struct RequestBudgets {
  double latency_ms = std::numeric_limits<double>::infinity();
  MemoryBudgetMode memory_mode = MemoryBudgetMode::kNone;
  double memory_mib = 0;  // the limit (absolute) or the margin (available_minus_margin)
  double energy_mj = std::numeric_limits<double>::infinity();
};

// Per-inference budgets for the adaptation loop, whose costs are per image.
Budgets per_image_budgets(const RequestBudgets& request, int frame_images);
const char* memory_mode_name(MemoryBudgetMode mode);

// A latency budget written relative to the bundle's own idle latencies, "FACTOR x REFERENCE"
// (relative_budget.h): resolved once the bundle is known, before anything runs.
enum class LatencyReference { kFastest, kLargest, kFastestAccurate };
struct RelativeLatency {
  double factor = 1;
  LatencyReference reference = LatencyReference::kFastest;
};

enum class EventKind { kStartBurners, kStopBurners, kAllocateBalloon, kReleaseBalloon, kBudget };

struct BudgetChange {
  std::optional<double> latency_ms;  // NaN while latency_relative is unresolved
  std::optional<RelativeLatency> latency_relative;
  std::optional<MemoryBudgetMode> memory_mode;
  std::optional<double> memory_mib;
  std::optional<double> energy_mj;
};

struct Event {
  double time_s = 0;
  EventKind kind = EventKind::kStartBurners;
  int count = 0;   // burners
  double mib = 0;  // balloon size
  BudgetChange budget;
  int line = 0;
  std::string text;  // the action as written, for traces and pictures
};

inline AdaptationOptions replay_defaults() {
  AdaptationOptions o;
  o.monitor.period_ms = 50;
  o.selector.tail_latency = true;  // judge the latency budget on the tail estimate (selector.h)
  return o;
}

struct Scenario {
  std::string path, name;  // name: valid_name(), so outputs stay inside the trace folder
  double duration_s = 0;
  int frame_images = 1;        // images per request; latency and energy budgets are per request
  double settle_s = 1;         // unrecorded run before the timeline (idle, warms the correction)
  double calibration_s = 0.5;  // hindsight and oracle policies: per branch and load level
  // The calibration takes each branch's requests in short slices, every branch in turn, over
  // the level's whole measuring time (calibration_s x branches), so that each branch sees the
  // same mix of scheduler phases: under two CPU burners on two cores a request either has a
  // core to itself or shares one, for about ten requests at a time, and one block of
  // calibration_s caught mostly one phase. false: one block per branch.
  bool calibration_interleaved = true;
  // Requests every branch that might still be an oracle pick gets at its level, after the first
  // pass (calibration.h, refine_level): about a dozen cannot tell a 2% share from 20%. 0: none.
  size_t calibration_refine_requests = 60;
  // The share of requests over budget that the hindsight branch (over the timeline) and the
  // oracle's branches (per segment) may have, in percent.
  double violation_target_pct = 2;
  // The adaptation loop's options, parsed straight into the loop's own struct. The replayer's
  // defaults differ from the library's in two places: a 50 ms period and tail-latency budgets.
  AdaptationOptions adaptation = replay_defaults();
  RequestBudgets budgets;  // latency_ms NaN while latency_relative is unresolved
  std::optional<RelativeLatency> latency_relative;  // the initial latency budget, when relative
  int latency_relative_line = 0;
  std::vector<Event> events;  // non-decreasing times; equal times keep file order
};

// The load and the budgets between two consecutive event times.
struct Segment {
  double begin_s = 0, end_s = 0;
  int burners = 0;
  double balloon_mib = 0;
  RequestBudgets budgets;
};

Scenario parse_scenario(const std::string& text, const std::string& path);
// Reads the file (at most kMaxFileBytes), then parse_scenario.
Scenario load_scenario(const std::string& path);
std::vector<Segment> segments(const Scenario& scenario);
// Applies one budget event to `budgets`.
void apply_budget_change(const BudgetChange& change, RequestBudgets* budgets);
// True when `after` is stricter than `before` in some budget (a contention step).
bool tightens(const RequestBudgets& before, const RequestBudgets& after);

}  // namespace adascale::scenario
