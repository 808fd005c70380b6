// Latency budgets relative to the bundle's own idle latencies (docs/scenarios.md): a scenario
// written as "1.4 x fastest-accurate" keeps its meaning for any bundle and machine, where an
// absolute budget in ms has to be re-sized for each. The parser keeps the factor and the
// reference; resolve_relative_budgets turns them into ms once the bundle is open, before
// anything runs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runtime/adapt/profiler.h"
#include "tools/scenario/scenario.h"

namespace adascale::scenario {

// Branches whose catalog accuracy is within this of the best one count as accurate.
constexpr double kAccurateWithin = 0.01;
constexpr double kMaxRelativeFactor = 1000;

const char* reference_name(LatencyReference reference);

// "FACTOR x REFERENCE" (REFERENCE: fastest, largest, fastest-accurate). A value without an "x"
// word is not relative: nullopt with `error` left empty. A relative value that is malformed:
// nullopt and a message for `error` (without the file, line or key).
std::optional<RelativeLatency> parse_relative_latency(const std::string& value, std::string* error);

// The reference latencies per request: a branch's idle median latency per image, as the
// adaptation loop predicts from it (the device profile's when the bundle has one, else the
// catalog's latency_ms.median), times frame_images.
struct ReferenceLatency {
  int branch = -1;
  double per_image_ms = 0, request_ms = 0;
};
// The reference branch; throws ScenarioError (a message without the file) when the bundle
// lacks the latencies or accuracies the reference needs.
ReferenceLatency reference_latency(LatencyReference reference,
                                   const std::vector<BranchCosts>& costs, int frame_images);

// Replaces every relative latency budget of `s` (initial and in budget events) by its value in
// ms. Returns one line per relative budget ("budget 1.4 x fastest-accurate = 12.3 ms per
// request (...)"). Throws ScenarioError naming the file, the line and the key.
std::vector<std::string> resolve_relative_budgets(Scenario* s,
                                                  const std::vector<BranchCosts>& costs);
// Throws ScenarioError when a relative budget of `s` is still unresolved.
void check_resolved(const Scenario& s);
// "1.4 x fastest-accurate = 12.3" for the summary's header, or the absolute value ("none": inf).
std::string describe_latency_budget(const Scenario& s);

}  // namespace adascale::scenario
