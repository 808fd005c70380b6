#include "tools/scenario/relative_budget.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "tools/scenario/text_format.h"

namespace adascale::scenario {
namespace {

const LatencyReference kReferences[] = {LatencyReference::kFastest, LatencyReference::kLargest,
                                        LatencyReference::kFastestAccurate};

// The resolved value must be a budget the parser would have taken as an absolute one.
void check_value(const Scenario& s, int line, double ms) {
  if (!(ms >= kMinLatencyBudgetMs) || !std::isfinite(ms))
    throw ScenarioError(s.path + ":" + std::to_string(line) + ": key 'latency_ms': resolves to " +
                        format("%g", ms) + " ms, expected at least " +
                        format("%g", kMinLatencyBudgetMs));
}

std::string resolve_one(const Scenario& s, int line, const RelativeLatency& r,
                        const std::vector<BranchCosts>& costs, double* ms) {
  ReferenceLatency ref;
  try {
    ref = reference_latency(r.reference, costs, s.frame_images);
  } catch (const ScenarioError& e) {
    throw ScenarioError(s.path + ":" + std::to_string(line) + ": key 'latency_ms': " +
                        format("%g x %s", r.factor, reference_name(r.reference)) + ": " + e.what());
  }
  *ms = r.factor * ref.request_ms;
  check_value(s, line, *ms);
  return format("budget %g x %s = %.2f ms per request (%s: %.4g ms per image x %d images)",
                r.factor, reference_name(r.reference), *ms,
                costs[static_cast<size_t>(ref.branch)].name.c_str(), ref.per_image_ms,
                s.frame_images);
}

}  // namespace

const char* reference_name(LatencyReference reference) {
  switch (reference) {
    case LatencyReference::kFastest:
      return "fastest";
    case LatencyReference::kLargest:
      return "largest";
    case LatencyReference::kFastestAccurate:
      return "fastest-accurate";
  }
  return "?";
}

std::optional<RelativeLatency> parse_relative_latency(const std::string& value,
                                                      std::string* error) {
  std::istringstream in(value);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  bool relative = false;
  for (const std::string& w : words) relative = relative || w == "x";
  if (!relative) return std::nullopt;
  if (words.size() != 3 || words[1] != "x") {
    *error = "expected FACTOR x REFERENCE (fastest, largest, fastest-accurate)";
    return std::nullopt;
  }
  RelativeLatency r;
  char* end = nullptr;
  errno = 0;
  r.factor = std::strtod(words[0].c_str(), &end);
  if (*end != '\0' || errno != 0 || !std::isfinite(r.factor) || r.factor <= 0 ||
      r.factor > kMaxRelativeFactor) {
    *error = "expected a factor > 0 and <= " + format("%g", kMaxRelativeFactor) + " before 'x'";
    return std::nullopt;
  }
  for (LatencyReference ref : kReferences)
    if (words[2] == reference_name(ref)) {
      r.reference = ref;
      return r;
    }
  *error =
      "unknown reference '" + words[2].substr(0, 40) + "' (fastest, largest, fastest-accurate)";
  return std::nullopt;
}

ReferenceLatency reference_latency(LatencyReference reference,
                                   const std::vector<BranchCosts>& costs, int frame_images) {
  if (costs.empty()) throw ScenarioError("the bundle has no branches");
  // Every branch must have a latency (and, for the references that rank by accuracy, an
  // accuracy): a reference picked among the branches that happen to have one would change
  // meaning silently from bundle to bundle.
  const bool by_accuracy = reference != LatencyReference::kFastest;
  double best_accuracy = -1;
  for (const BranchCosts& c : costs) {
    if (!c.latency_median_ms || !(*c.latency_median_ms > 0))
      throw ScenarioError("the bundle records no idle latency (latency_ms.median) for branch '" +
                          c.name + "'");
    if (by_accuracy && !c.accuracy)
      throw ScenarioError("the bundle records no accuracy for branch '" + c.name + "'");
    if (c.accuracy) best_accuracy = std::max(best_accuracy, *c.accuracy);
  }
  ReferenceLatency out;
  for (size_t b = 0; b < costs.size(); ++b) {
    const BranchCosts& c = costs[b];
    const double ms = *c.latency_median_ms;
    bool better = false;
    if (out.branch < 0) {
      better = reference != LatencyReference::kFastestAccurate ||
               *c.accuracy >= best_accuracy - kAccurateWithin;
    } else if (reference == LatencyReference::kLargest) {
      // the most accurate; of equally accurate ones, the slower (the larger)
      const double a = *c.accuracy, held = *costs[static_cast<size_t>(out.branch)].accuracy;
      better = a > held || (a == held && ms > out.per_image_ms);
    } else {
      const bool eligible =
          reference == LatencyReference::kFastest || *c.accuracy >= best_accuracy - kAccurateWithin;
      better = eligible && ms < out.per_image_ms;
    }
    if (better) {
      out.branch = static_cast<int>(b);
      out.per_image_ms = ms;
    }
  }
  out.request_ms = out.per_image_ms * frame_images;
  return out;
}

std::vector<std::string> resolve_relative_budgets(Scenario* s,
                                                  const std::vector<BranchCosts>& costs) {
  std::vector<std::string> lines;
  if (s->latency_relative)
    lines.push_back(resolve_one(*s, s->latency_relative_line, *s->latency_relative, costs,
                                &s->budgets.latency_ms));
  for (Event& e : s->events)
    if (e.kind == EventKind::kBudget && e.budget.latency_relative) {
      double ms = 0;
      const std::string line = resolve_one(*s, e.line, *e.budget.latency_relative, costs, &ms);
      e.budget.latency_ms = ms;
      lines.push_back(format("t=%g s: ", e.time_s) + line);
    }
  return lines;
}

void check_resolved(const Scenario& s) {
  bool unresolved = std::isnan(s.budgets.latency_ms);
  for (const Event& e : s.events)
    unresolved = unresolved || (e.budget.latency_ms && std::isnan(*e.budget.latency_ms));
  if (unresolved)
    throw ScenarioError(s.path +
                        ": key 'latency_ms': a relative budget was not resolved against the "
                        "bundle's latencies");
}

std::string describe_latency_budget(const Scenario& s) {
  const double ms = s.budgets.latency_ms;
  const std::string value = std::isfinite(ms) ? format("%g", ms) : "none";
  if (!s.latency_relative || !std::isfinite(ms)) return value;
  return format("%g x %s = %.2f", s.latency_relative->factor,
                reference_name(s.latency_relative->reference), ms);
}

}  // namespace adascale::scenario
