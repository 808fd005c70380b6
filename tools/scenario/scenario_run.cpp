#include "tools/scenario/scenario_run.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <sstream>

#include "base/durable_file.h"
#include "tools/scenario/app_link.h"
#include "tools/scenario/calibration.h"
#include "tools/scenario/oracle.h"
#include "tools/scenario/relative_budget.h"
#include "tools/scenario/replay.h"
#include "tools/scenario/summary_tables.h"
#include "tools/scenario/text_format.h"
#include "tools/scenario/trace_csv.h"
#include "tools/scenario/trace_rows.h"
#include "tools/scenario/trace_svg.h"

namespace adascale::scenario {

const char* policy_name(Policy policy) {
  switch (policy) {
    case Policy::kAdaptive:
      return "adaptive";
    case Policy::kLargest:
      return "largest";
    case Policy::kSmallest:
      return "smallest";
    case Policy::kHindsight:
      return "hindsight";
    case Policy::kOracle:
      return "oracle";
  }
  return "?";
}

std::vector<Policy> parse_policies(const std::string& text) {
  const Policy all[] = {Policy::kAdaptive, Policy::kLargest, Policy::kSmallest, Policy::kHindsight,
                        Policy::kOracle};
  if (text == "all") return {std::begin(all), std::end(all)};
  std::vector<Policy> out;
  std::istringstream items(text);
  for (std::string item; std::getline(items, item, ',');) {
    const Policy* found = std::find_if(std::begin(all), std::end(all),
                                       [&](Policy p) { return item == policy_name(p); });
    if (found == std::end(all))
      throw ScenarioError("--policy: unknown policy '" + item +
                          "' (adaptive, largest, smallest, hindsight, oracle or all)");
    if (std::find(out.begin(), out.end(), *found) == out.end()) out.push_back(*found);
  }
  if (out.empty()) throw ScenarioError("--policy needs a policy");
  return out;
}

void write_file_atomically(const std::string& path, const std::string& content) {
  // Temporaries that a killed run left next to the file go first.
  base::remove_stale_temps(path);
  std::string error;
  if (!base::write_file_atomic(path, content.data(), content.size(), &error))
    throw ScenarioError("cannot write the trace '" + path + "': " + error);
}

namespace {

// A file can be created in `folder` (checked before a run, not after it).
void check_output_folder(const std::string& folder) {
  const std::string probe = base::unique_temp_path(folder + "/.adascale-run-probe");
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    throw ScenarioError("cannot write into the trace folder '" + folder +
                        "': " + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

// What parse_scenario cannot know: the name of a scenario built in code, and this machine's
// memory against the balloons.
void check_runnable(const Scenario& s) {
  if (!valid_name(s.name))
    throw ScenarioError(s.path + ": key 'name': '" + s.name +
                        "' is not one file name of A-Z a-z 0-9 . _ -");
  double peak_mib = 0;
  for (const Segment& seg : segments(s)) peak_mib = std::max(peak_mib, seg.balloon_mib);
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) {
    const double physical_mib = static_cast<double>(pages) * static_cast<double>(page) / kMiB;
    if (peak_mib >= physical_mib)
      throw ScenarioError(s.path + ": key 'balloon_alloc': balloons hold " +
                          format("%.0f", peak_mib) + " MiB at once, not less than this machine's " +
                          format("%.0f", physical_mib) + " MiB of memory");
  }
}

}  // namespace

std::vector<PolicySummary> run_scenario(const Scenario& s, const Workload& w,
                                        const RunOptions& options, std::string* write_error) {
  if (w.costs.empty()) throw ScenarioError("the bundle has no branches");
  if (w.count == 0 || !w.labels) throw ScenarioError("the scenario needs labelled images");
  check_resolved(s);
  check_runnable(s);
  if (!options.trace_dir.empty()) check_output_folder(options.trace_dir);
  // A trace that cannot be written is reported after the run, with the results kept, when the
  // caller asks for that; otherwise it ends the run.
  auto write = [&](const std::string& path, const std::string& content) {
    try {
      write_file_atomically(path, content);
      return true;
    } catch (const ScenarioError& e) {
      if (!write_error) throw;
      if (write_error->empty()) *write_error = e.what();
      return false;
    }
  };
  // Every branch prepared and cached up front: a switch on the run path is then a pointer swap.
  adascale_set_memory_budget(w.runtime, SIZE_MAX);
  {
    FrameRunner warm(w, 1);
    int correct = 0;
    for (size_t b = 0; b < w.costs.size(); ++b)
      warm.run(static_cast<int>(b), w.fixed_threads, &correct);
  }
  std::string report;
  std::vector<PolicySummary> summaries;
  // measured once, when the first policy that needs it comes up
  std::unique_ptr<Calibration> calibration;
  auto calibrated = [&]() -> const Calibration& {
    if (!calibration) calibration = std::make_unique<Calibration>(calibrate(s, w, options.verbose));
    return *calibration;
  };
  AppLink* link = options.link;
  if (link) {
    if (options.follower)
      link->send("ready");
    else
      link->expect("ready");
    // both calibrations up front, each while the other app runs its loop
    const bool calibrates =
        std::any_of(options.policies.begin(), options.policies.end(),
                    [](Policy p) { return p == Policy::kHindsight || p == Policy::kOracle; });
    if (calibrates && !options.follower) {
      link->send("background");
      calibrated();
      link->send("calibrate");
      run_background(s, w, *link);
      link->expect("calibrated");
    } else if (calibrates) {
      link->expect("background");
      run_background(s, w, *link);
      link->expect("calibrate");
      calibrated();
      link->send("calibrated");
    }
  }
  for (Policy policy : options.policies) {
    check_interrupt();
    int fixed = -1;
    std::vector<ScheduledBranch> schedule;
    if (policy == Policy::kLargest) fixed = extreme_branch(w.costs, true);
    if (policy == Policy::kSmallest) fixed = extreme_branch(w.costs, false);
    if (policy == Policy::kHindsight) fixed = hindsight_branch(s, w, calibrated(), &report);
    if (policy == Policy::kOracle) schedule = oracle_schedule(s, w, calibrated(), &report);
    if (link && !options.follower) {
      // both apps start the policy together, by the steady clock they share
      const double start = now_ms() + 300;
      link->send(std::string("run ") + policy_name(policy) + " " + format("%.3f", start));
      wait_until(start);
    } else if (link) {
      const std::string line = link->receive();
      const std::string expected = std::string("run ") + policy_name(policy) + " ";
      if (line.compare(0, expected.size(), expected) != 0)
        throw ScenarioError("the other app said '" + line + "', expected '" + expected + "...'");
      wait_until(std::strtod(line.c_str() + expected.size(), nullptr));
    }
    const PolicyRun run =
        run_policy(s, w, policy, fixed, options.verbose, schedule, !(link && options.follower));
    if (run.cut_at_ms >= 0)
      report += format(
          "%s: the timeline ended at t=%.2f s, after %zu requests (the most a policy "
          "records)\n",
          policy_name(policy), run.cut_at_ms / 1000, run.frames.size());
    const std::vector<TraceRow> rows = join_trace(run, s, w);
    PolicySummary sum = summarize(run, rows, s, w);
    if (!options.trace_dir.empty()) {
      const std::string base = options.trace_dir + "/" + s.name + "-" + policy_name(policy);
      // named in the summary only when both were written
      if (write(base + ".csv", trace_csv(rows, s, w)) &&
          write(base + ".svg", trace_svg(run, rows, sum, s, w))) {
        sum.trace_csv = base + ".csv";
        sum.trace_svg = base + ".svg";
      }
    }
    summaries.push_back(sum);
    if (link && options.follower)
      link->send("done");
    else if (link)
      link->expect("done");
  }
  if (link && options.follower)
    link->expect("end");
  else if (link)
    link->send("end");
  for (const PolicySummary& sum : summaries)
    if (sum.policy == Policy::kAdaptive && !sum.steps_report.empty())
      report +=
          "adaptive: contention steps and the switch down that followed:\n" + sum.steps_report;
  if (!options.trace_dir.empty())
    write(options.trace_dir + "/" + s.name + "-summary.txt", format_summary(s, summaries) + report);
  if (options.verbose) std::fputs(report.c_str(), stderr);
  return summaries;
}

}  // namespace adascale::scenario
