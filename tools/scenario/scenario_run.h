// Replays a contention scenario (scenario.h) against a bundle: classifies the test split in
// requests of frame_images images, cycling, while a driver thread plays the timeline (burner
// processes, memory balloons, budget changes), once per policy:
//   adaptive   the adaptation loop's current branch (the run path only reads it)
//   largest    always the branch with the most MACs
//   smallest   always the branch with the fewest MACs
//   hindsight  the best single branch in hindsight: each branch is measured under every load
//              level of the timeline, and the most accurate one whose expected share of
//              requests over the latency budget (or, at any time, over the memory budget) is at
//              most violation_target_pct (2%) wins; when none qualifies, the one with the
//              fewest expected violations
//   oracle     per segment of the timeline, the most accurate branch whose violations under
//              that segment's load (from the same calibration) stay within the target,
//              switching at the boundaries for free (oracle.h): an upper bound
// Writes a trace CSV and an SVG per policy and returns one summary per policy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "adascale.h"
#include "runtime/adapt/profiler.h"
#include "tools/scenario/scenario.h"

namespace adascale::scenario {

enum class Policy { kAdaptive, kLargest, kSmallest, kHindsight, kOracle };
const char* policy_name(Policy policy);
// "adaptive", "largest", "smallest", "hindsight", "oracle", "all" or a comma list; throws
// ScenarioError.
std::vector<Policy> parse_policies(const std::string& text);

// What the run path classifies. Pixels are NCHW floats, one image after the other.
struct Workload {
  adascale_runtime* runtime = nullptr;
  std::vector<BranchCosts> costs;  // per branch, in the bundle's order
  const float* pixels = nullptr;
  const int64_t* labels = nullptr;
  size_t count = 0;         // images
  size_t image_floats = 0;  // floats per image
  size_t classes = 0;
  // threads per inference the runtime was opened with; with threads as a dimension of the
  // adaptive loop (its catalog has latency_by_threads), every other policy and the calibration
  // run on one thread, the catalog's own measurement (fixed_threads 1; 0: the runtime's count)
  int threads = 1;
  int fixed_threads = 0;
};

class AppLink;  // app_link.h

struct RunOptions {
  std::string trace_dir;  // empty: no trace files
  std::vector<Policy> policies;
  bool verbose = true;  // progress lines on stderr
  // Two apps side by side (app_link.h): the link to the other app's process, and whether this
  // one follows (applies the budget events, the other plays the load). Both list the same
  // policies.
  AppLink* link = nullptr;
  bool follower = false;
};

struct PolicySummary {
  Policy policy = Policy::kAdaptive;
  std::string branch;  // the static branch, "(adaptive)" or "(segments)" (the oracle)
  size_t requests = 0, images = 0;
  size_t violations = 0;         // requests with observed latency > the latency budget
  size_t memory_violations = 0;  // requests whose branch exceeded the memory budget
  size_t correct = 0;
  size_t switches = 0;          // branch changes seen by the run path after the timeline started
  size_t contention_steps = 0;  // events that add load or tighten a budget
  size_t steps_needing_switch = 0;       // ... after which the running branch missed the budget
  size_t steps_followed_by_switch = 0;   // ... of those, followed by a switch to a smaller branch
  double median_step_to_switch_ms = -1;  // over those; -1: none
  double energy_mj = 0;                  // modelled, all requests
  double median_latency_ms = 0, p99_latency_ms = 0;
  std::string steps_report;  // one line per contention step: what followed it
  std::string trace_csv, trace_svg;
};

// What followed one contention step [begin, end) of an adaptive run, from its requests and branch
// switches in time order: the first switch down, and whether one was needed, i.e. the branch
// running into the step (that of the last request started before it) missed the budget on one of
// its first `evidence` requests after it, before any switch (or the loop had switched before any
// of them started).
struct StepRequest {
  double start_ms;
  int branch;
  bool violation;
};
struct StepSwitch {
  double t_ms;
  int from, to;
  bool down;  // to a smaller branch (fewer MACs)
};
struct StepOutcome {
  const StepSwitch* down = nullptr;  // the first switch down in [begin, end), or null
  bool needed = false;
  size_t seen = 0, missed = 0;  // requests looked at and those over budget
  int running = -1;             // the branch running into the step
};
StepOutcome classify_step(double begin, double end, const std::vector<StepRequest>& requests,
                          const std::vector<StepSwitch>& switches, size_t evidence);

// Installs SIGINT/SIGTERM handlers that make run_scenario stop at the next request, kill and
// reap its children and throw ScenarioError("interrupted").
void install_interrupt_handlers();
bool interrupted();

// Before anything runs, checks that the scenario's name is one file name, that its balloons fit
// in this machine's memory and that the trace folder takes files. A trace that cannot be written
// then throws, or, with `write_error`, is reported there (the first one) while the run goes on.
// A policy records at most kMaxRecordedRequests requests; its timeline ends there (a note in the
// report).
std::vector<PolicySummary> run_scenario(const Scenario& scenario, const Workload& workload,
                                        const RunOptions& options,
                                        std::string* write_error = nullptr);
// The summary table, as printed and as written next to the traces. With an oracle run, a column
// gives every policy's accuracy gap to it (percentage points).
std::string format_summary(const Scenario& scenario, const std::vector<PolicySummary>& summaries);

// Writes `content` to `path` through a unique temporary file in the same folder, fsync and a
// rename (base/durable_file.h), so readers never see a partial file; removes temporaries that
// dead writers left for `path`. Throws ScenarioError.
void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace adascale::scenario
