#include "runtime/cli/scenario_run.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>
#include <thread>

#include "base/durable_file.h"
#include "runtime/adapt/adaptation_loop.h"
#include "runtime/cli/contention.h"

namespace adascale::scenario {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kHindsightViolationLimit = 0.02;

std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void on_interrupt(int) { g_interrupted.store(true); }

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

void check_interrupt() {
  if (g_interrupted.load()) throw ScenarioError("interrupted");
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buffer[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buffer, sizeof(buffer), fmt, args);
  va_end(args);
  return buffer;
}

double quantile(std::vector<double> values, double q) {
  if (values.empty()) return kNaN;
  std::sort(values.begin(), values.end());
  const size_t index = static_cast<size_t>(std::ceil(q * values.size()));
  return values[std::min(values.size() - 1, index > 0 ? index - 1 : 0)];
}

// Classifies requests of `frame_images` images, cycling through the test split.
class FrameRunner {
 public:
  FrameRunner(const Workload& w, int frame_images)
      : w_(w), images_(frame_images), logits_(std::max<size_t>(w.classes, 1)) {
    for (size_t i = 0; i < w.costs.size(); ++i) names_.push_back(w.costs[i].name);
  }
  void rewind() { cursor_ = 0; }
  // Runs one request on `branch`; returns its wall time in ms (switching included).
  double run(int branch, int* correct) {
    const double start = now_ms();
    if (branch != selected_) {
      check(adascale_select(w_.runtime, names_[static_cast<size_t>(branch)].c_str()), "select");
      selected_ = branch;
    }
    int right = 0;
    for (int j = 0; j < images_; ++j) {
      const size_t index = cursor_++ % w_.count;
      check(adascale_run(w_.runtime, w_.pixels + index * w_.image_floats, w_.image_floats,
                         logits_.data(), logits_.size()),
            "run");
      const size_t best =
          static_cast<size_t>(std::max_element(logits_.begin(), logits_.end()) - logits_.begin());
      right += static_cast<int64_t>(best) == w_.labels[index];
    }
    *correct = right;
    return now_ms() - start;
  }

 private:
  void check(adascale_status status, const char* what) const {
    if (status != ADASCALE_OK)
      throw ScenarioError(std::string(what) + " failed: " + adascale_last_error(w_.runtime));
  }
  const Workload& w_;
  int images_;
  size_t cursor_ = 0;
  int selected_ = -1;
  std::vector<float> logits_;
  std::vector<std::string> names_;
};

struct Frame {
  double start_ms = 0;  // since the timeline started
  double ms = 0;
  int branch = -1;
  int correct = 0;
};

// The load and budgets in force from t_ms on, as the driver applied them.
struct StateChange {
  double t_ms = 0;
  int burners = 0;
  double balloon_mib = 0;
  RequestBudgets budgets;
  std::string text;
  bool contention = false;  // added load or tightened a budget
};

struct ContextRow {
  double t_ms = 0;
  double cpu = kNaN, others = kNaN, procs_running = kNaN, available_mib = kNaN, cache_rate = kNaN;
  double contention_factor = kNaN;
  std::vector<double> predicted_ms;    // per image, per branch; NaN when unknown
  std::vector<double> tail_ms;         // the same at the tail (profiler.h)
  std::vector<double> uncorrected_ms;  // contention-scaled catalog latency, no online correction
};

// Plays the timeline on its own thread and samples the loop's context for the trace. The
// contention processes belong to that thread (they die with it, see contention.h) and are
// killed and reaped before it ends, on every path.
class Driver {
 public:
  Driver(const Scenario& s, AdaptationLoop* loop, double t0_ms)
      : s_(s), loop_(loop), t0_(t0_ms), thread_(&Driver::run, this) {}
  ~Driver() { stop(); }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool failed() const { return failed_.load(); }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }
  // Valid after stop().
  const std::vector<StateChange>& changes() const { return changes_; }
  const std::vector<ContextRow>& context() const { return context_; }

 private:
  void run() {
    try {
      ContentionProcesses processes;
      StateChange state;
      state.budgets = s_.budgets;
      state.text = "start";
      changes_.push_back(state);
      size_t next = 0;
      std::unique_lock<std::mutex> lock(mutex_);
      while (!done_ && !g_interrupted.load()) {
        // Events due together share one time stamp, so that they count as one step.
        const double due = now_ms() - t0_;
        while (next < s_.events.size() && s_.events[next].time_s * 1000 <= due) {
          const Event& e = s_.events[next++];
          state.t_ms = due;
          state.text = e.text;
          state.contention = false;
          switch (e.kind) {
            case EventKind::kStartBurners:
              processes.start_burners(e.count);
              state.contention = true;
              break;
            case EventKind::kStopBurners:
              processes.stop_burners(e.count);
              break;
            case EventKind::kAllocateBalloon:
              processes.allocate_balloon(e.mib);
              state.contention = true;
              break;
            case EventKind::kReleaseBalloon:
              processes.release_balloon();
              break;
            case EventKind::kBudget: {
              RequestBudgets budgets = state.budgets;
              apply_budget_change(e.budget, &budgets);
              state.contention = tightens(state.budgets, budgets);
              state.budgets = budgets;
              const Status status = loop_->set_budgets(per_image_budgets(budgets, s_.frame_images));
              if (!status.ok())
                throw ScenarioError("budget at t=" + std::to_string(e.time_s) +
                                    " s rejected: " + status.message);
              break;
            }
          }
          state.burners = processes.burners();
          state.balloon_mib = processes.balloon_mib();
          changes_.push_back(state);
        }
        sample();
        double wake = now_ms() - t0_ + s_.adaptation.monitor.period_ms;
        if (next < s_.events.size()) wake = std::min(wake, s_.events[next].time_s * 1000);
        const auto until = std::chrono::steady_clock::time_point(
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                std::chrono::duration<double, std::milli>(t0_ + wake)));
        wake_.wait_until(lock, until, [this] { return done_; });
      }
      processes.stop_all();
    } catch (...) {
      error_ = std::current_exception();
      failed_.store(true);
    }
  }

  void sample() {
    if (loop_->stats().iterations == 0) return;
    const ContextSample s = loop_->last_sample();
    ContextRow row;
    row.t_ms = now_ms() - t0_;
    row.cpu = s.cpu_utilization.value_or(kNaN);
    row.others = s.others_cpu_utilization.value_or(kNaN);
    row.procs_running = s.procs_running.value_or(kNaN);
    if (const auto available = s.available_memory_bytes()) row.available_mib = *available / kMiB;
    row.cache_rate = s.cache_rate.value_or(kNaN);
    for (const BranchEstimate& e : loop_->last_estimates()) {
      row.predicted_ms.push_back(e.latency_known ? e.latency_ms : kNaN);
      row.tail_ms.push_back(e.latency_known ? e.latency_tail_ms : kNaN);
      row.uncorrected_ms.push_back(e.latency_known ? e.latency_uncorrected_ms : kNaN);
    }
    context_.push_back(std::move(row));
  }

  const Scenario& s_;
  AdaptationLoop* loop_;
  const double t0_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  std::vector<StateChange> changes_;
  std::vector<ContextRow> context_;
  std::thread thread_;  // last: starts after everything above exists
};

// What one policy produced, before it is written out.
struct PolicyRun {
  Policy policy;
  int fixed_branch = -1;
  std::vector<Frame> frames;
  std::vector<StateChange> changes;
  std::vector<ContextRow> context;
  int settled_branch = -1;  // the branch in use when the timeline started
  double cut_at_ms = -1;    // >= 0: the timeline ended here, at kMaxRecordedRequests
};

PolicyRun run_policy(const Scenario& s, const Workload& w, Policy policy, int fixed_branch,
                     bool verbose) {
  PolicyRun out;
  out.policy = policy;
  out.fixed_branch = fixed_branch;
  // Every policy runs the loop, so each pays the same sampling cost and the trace has the same
  // context signals and predictions; only the adaptive one follows its choice.
  AdaptationLoop loop(w.costs, s.adaptation);
  const Status budgets = loop.set_budgets(per_image_budgets(s.budgets, s.frame_images));
  if (!budgets.ok()) throw ScenarioError(s.path + ": initial budgets rejected: " + budgets.message);
  const Status started = loop.start();
  if (!started.ok()) throw ScenarioError("adaptation loop: " + started.message);

  FrameRunner runner(w, s.frame_images);
  auto branch_now = [&]() {
    if (fixed_branch >= 0) return fixed_branch;
    int branch = loop.current_branch();
    if (branch < 0) {
      loop.step();  // the thread has not decided yet
      branch = loop.current_branch();
    }
    if (branch < 0) throw ScenarioError("the adaptation loop chose no branch");
    return branch;
  };
  auto request = [&](Frame* frame) {
    frame->branch = branch_now();
    frame->ms = runner.run(frame->branch, &frame->correct);
    loop.report_latency(frame->branch, frame->ms / s.frame_images);
  };

  if (verbose)
    std::fprintf(stderr, "[%s] %s: settling %.1f s, then %.1f s of timeline\n", s.name.c_str(),
                 policy_name(policy), s.settle_s, s.duration_s);
  const double settle_end = now_ms() + s.settle_s * 1000;
  Frame frame;
  while (now_ms() < settle_end) {
    check_interrupt();
    request(&frame);
  }
  out.settled_branch = frame.branch >= 0 ? frame.branch : branch_now();
  runner.rewind();

  const double t0 = now_ms();
  {
    Driver driver(s, &loop, t0);
    // Reserving (a request every 0.5 ms, at most 2^20 of them up front) keeps the run path mostly
    // free of reallocation; the record is capped so that very short requests cannot exhaust
    // memory.
    out.frames.reserve(std::min(static_cast<size_t>(s.duration_s * 2000) + 16, size_t{1} << 20));
    while (!driver.failed() && !g_interrupted.load()) {
      frame.start_ms = now_ms() - t0;
      if (frame.start_ms >= s.duration_s * 1000) break;
      if (out.frames.size() >= kMaxRecordedRequests) {
        out.cut_at_ms = frame.start_ms;
        break;
      }
      request(&frame);
      out.frames.push_back(frame);
    }
    driver.stop();
    loop.stop();
    driver.rethrow();
    out.changes = driver.changes();
    out.context = driver.context();
  }
  check_interrupt();
  return out;
}

// --- static branches --------------------------------------------------------------------------

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

// The hindsight branch: see scenario_run.h. Appends the calibration table to `report`.
int calibrate_hindsight(const Scenario& s, const Workload& w, bool verbose, std::string* report) {
  const std::vector<Segment> segs = segments(s);
  std::vector<std::pair<int, double>> levels;  // burners, balloon MiB
  for (const Segment& seg : segs) {
    const std::pair<int, double> level(seg.burners, seg.balloon_mib);
    if (std::find(levels.begin(), levels.end(), level) == levels.end()) levels.push_back(level);
  }
  ContextMonitor monitor;
  const ContextSample idle = monitor.sample_at(now_ms(), false);
  const double available_bytes =
      idle.available_memory_bytes() ? static_cast<double>(*idle.available_memory_bytes()) : kNaN;

  const size_t branches = w.costs.size();
  std::vector<std::vector<std::vector<double>>> ms(levels.size(),
                                                   std::vector<std::vector<double>>(branches));
  FrameRunner runner(w, s.frame_images);
  if (verbose)
    std::fprintf(stderr,
                 "[%s] hindsight: measuring %zu branches under %zu load levels, %.1f s each\n",
                 s.name.c_str(), branches, levels.size(), s.calibration_s);
  for (size_t l = 0; l < levels.size(); ++l) {
    ContentionProcesses processes;
    if (levels[l].first > 0) processes.start_burners(levels[l].first);
    if (levels[l].second > 0) processes.allocate_balloon(levels[l].second);
    for (size_t b = 0; b < branches; ++b) {
      int correct = 0;
      for (int warm = 0; warm < 3; ++warm) runner.run(static_cast<int>(b), &correct);
      const double end = now_ms() + s.calibration_s * 1000;
      while ((now_ms() < end || ms[l][b].size() < 10) &&
             ms[l][b].size() < kMaxCalibrationRequests) {
        check_interrupt();
        ms[l][b].push_back(runner.run(static_cast<int>(b), &correct));
      }
    }
    processes.stop_all();
  }

  // Expected share of violating requests over the timeline, per branch.
  std::vector<double> expected(branches, 0);
  for (size_t b = 0; b < branches; ++b) {
    const double peak = w.costs[b].memory_bytes.value_or(0);
    for (const Segment& seg : segs) {
      const size_t l = static_cast<size_t>(
          std::find(levels.begin(), levels.end(), std::make_pair(seg.burners, seg.balloon_mib)) -
          levels.begin());
      double share = 0;
      const double limit =
          memory_limit_bytes(seg.budgets, available_bytes - seg.balloon_mib * kMiB);
      if (peak > limit) {
        share = 1;
      } else {
        size_t over = 0;
        for (double v : ms[l][b]) over += v > seg.budgets.latency_ms;
        share = static_cast<double>(over) / ms[l][b].size();
      }
      expected[b] += share * (seg.end_s - seg.begin_s) / s.duration_s;
    }
  }
  int chosen = -1;
  for (size_t b = 0; b < branches; ++b) {
    if (expected[b] > kHindsightViolationLimit) continue;
    const double acc = w.costs[b].accuracy.value_or(0);
    if (chosen < 0 || acc > w.costs[static_cast<size_t>(chosen)].accuracy.value_or(0))
      chosen = static_cast<int>(b);
  }
  if (chosen < 0)
    chosen =
        static_cast<int>(std::min_element(expected.begin(), expected.end()) - expected.begin());

  std::ostringstream table;
  table << "hindsight calibration (median request ms per load level; expected violations):\n";
  table << format("  %-24s", "branch");
  for (const auto& level : levels)
    table << format("  %9s", format("%db/%.0fM", level.first, level.second).c_str());
  table << "  expected  accuracy\n";
  for (size_t b = 0; b < branches; ++b) {
    table << format("  %-24s", w.costs[b].name.c_str());
    for (size_t l = 0; l < levels.size(); ++l) table << format("  %9.2f", quantile(ms[l][b], 0.5));
    table << format("  %7.1f%%  %7.2f%%%s\n", 100 * expected[b],
                    100 * w.costs[b].accuracy.value_or(kNaN),
                    static_cast<int>(b) == chosen ? "  <- chosen" : "");
  }
  table << "  (load level: burners/balloon MiB)\n";
  *report += table.str();
  return chosen;
}

// --- analysis, traces, pictures ------------------------------------------------------------

struct TraceRow {
  const Frame* frame;
  const StateChange* state;
  const ContextRow* context;  // may be null
  double budget_ms, memory_limit_mib, energy_mj, predicted_ms, predicted_tail_ms,
      predicted_uncorrected_ms;
  bool violation, memory_violation;
};

std::string csv_number(double v, const char* fmt = "%.4f") {
  if (std::isnan(v)) return "";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return format(fmt, v);
}

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

std::vector<TraceRow> join_trace(const PolicyRun& run, const Scenario& s, const Workload& w) {
  std::vector<TraceRow> rows;
  rows.reserve(run.frames.size());
  size_t state = 0, context = 0;
  const DeviceProfile profile;
  for (const Frame& f : run.frames) {
    while (state + 1 < run.changes.size() && run.changes[state + 1].t_ms <= f.start_ms) ++state;
    while (context + 1 < run.context.size() && run.context[context + 1].t_ms <= f.start_ms)
      ++context;
    TraceRow r{};
    r.frame = &f;
    r.state = &run.changes[state];
    r.context = run.context.empty() ? nullptr : &run.context[context];
    const RequestBudgets& b = r.state->budgets;
    r.budget_ms = b.latency_ms;
    const double available =
        r.context && !std::isnan(r.context->available_mib) ? r.context->available_mib * kMiB : kNaN;
    const double limit = memory_limit_bytes(b, available);
    r.memory_limit_mib = limit / kMiB;
    const BranchCosts& c = w.costs[static_cast<size_t>(f.branch)];
    r.violation = f.ms > b.latency_ms;
    r.memory_violation = c.memory_bytes && *c.memory_bytes > limit;
    const double cache_rate = r.context && !std::isnan(r.context->cache_rate)
                                  ? r.context->cache_rate
                                  : profile.default_cache_rate;
    r.energy_mj =
        s.frame_images * modelled_energy_mj(profile, c.int8, c.macs.value_or(0),
                                            c.memory_access_bytes.value_or(0), cache_rate);
    r.predicted_ms = r.predicted_tail_ms = r.predicted_uncorrected_ms = kNaN;
    if (r.context && static_cast<size_t>(f.branch) < r.context->predicted_ms.size()) {
      const auto b = static_cast<size_t>(f.branch);
      r.predicted_ms = r.context->predicted_ms[b] * s.frame_images;
      r.predicted_tail_ms = r.context->tail_ms[b] * s.frame_images;
      r.predicted_uncorrected_ms = r.context->uncorrected_ms[b] * s.frame_images;
    }
    rows.push_back(r);
  }
  return rows;
}

std::string trace_csv(const std::vector<TraceRow>& rows, const Scenario& s, const Workload& w) {
  std::string out =
      "time_s,burners,balloon_mib,budget_latency_ms,budget_memory_mib,budget_energy_mj,"
      "cpu_utilization,others_cpu_utilization,procs_running,mem_available_mib,cache_rate,branch,"
      "predicted_ms,predicted_tail_ms,predicted_uncorrected_ms,observed_ms,images,correct,"
      "violation,memory_violation,energy_mj\n";
  for (const TraceRow& r : rows) {
    const ContextRow* c = r.context;
    out += csv_number(r.frame->start_ms / 1000, "%.4f") + "," + std::to_string(r.state->burners) +
           "," + csv_number(r.state->balloon_mib, "%.1f") + "," + csv_number(r.budget_ms, "%.3f") +
           "," + csv_number(r.memory_limit_mib, "%.3f") + "," +
           csv_number(r.state->budgets.energy_mj, "%.4f") + "," +
           csv_number(c ? c->cpu : kNaN, "%.3f") + "," + csv_number(c ? c->others : kNaN, "%.3f") +
           "," + csv_number(c ? c->procs_running : kNaN, "%.0f") + "," +
           csv_number(c ? c->available_mib : kNaN, "%.1f") + "," +
           csv_number(c ? c->cache_rate : kNaN, "%.3f") + "," +
           w.costs[static_cast<size_t>(r.frame->branch)].name + "," +
           csv_number(r.predicted_ms, "%.4f") + "," + csv_number(r.predicted_tail_ms, "%.4f") +
           "," + csv_number(r.predicted_uncorrected_ms, "%.4f") + "," +
           csv_number(r.frame->ms, "%.4f") + "," + std::to_string(s.frame_images) + "," +
           std::to_string(r.frame->correct) + "," + (r.violation ? "1" : "0") + "," +
           (r.memory_violation ? "1" : "0") + "," + csv_number(r.energy_mj, "%.5f") + "\n";
  }
  return out;
}

}  // namespace

StepOutcome classify_step(double begin, double end, const std::vector<StepRequest>& requests,
                          const std::vector<StepSwitch>& switches, size_t evidence) {
  StepOutcome out;
  for (const StepSwitch& sw : switches)
    if (sw.t_ms >= begin && sw.t_ms < end && sw.down) {
      out.down = &sw;
      break;
    }
  // the branch running into the step (the last one started before it, else the first after it)
  // and its first requests after the step, until any switch
  for (const StepRequest& r : requests) {
    if (r.start_ms < begin) {
      out.running = r.branch;
      continue;
    }
    if (out.running < 0) out.running = r.branch;
    if (r.start_ms >= end || r.branch != out.running || out.seen == evidence) break;
    ++out.seen;
    out.missed += r.violation;
  }
  out.needed = out.missed > 0 || (out.down && out.seen == 0);
  return out;
}

namespace {

PolicySummary summarize(const PolicyRun& run, const std::vector<TraceRow>& rows, const Scenario& s,
                        const Workload& w) {
  PolicySummary sum;
  sum.policy = run.policy;
  sum.branch =
      run.fixed_branch >= 0 ? w.costs[static_cast<size_t>(run.fixed_branch)].name : "(adaptive)";
  std::vector<double> latencies;
  int previous = run.settled_branch;
  std::vector<StepSwitch> switches;
  std::vector<StepRequest> requests;
  for (const TraceRow& r : rows) {
    requests.push_back({r.frame->start_ms, r.frame->branch, r.violation});
    ++sum.requests;
    sum.images += static_cast<size_t>(s.frame_images);
    sum.violations += r.violation;
    sum.memory_violations += r.memory_violation;
    sum.correct += static_cast<size_t>(r.frame->correct);
    sum.energy_mj += r.energy_mj;
    latencies.push_back(r.frame->ms);
    if (r.frame->branch != previous)
      switches.push_back({r.frame->start_ms, previous, r.frame->branch,
                          size_key(w.costs[static_cast<size_t>(r.frame->branch)]) <
                              size_key(w.costs[static_cast<size_t>(previous)])});
    previous = r.frame->branch;
  }
  sum.switches = switches.size();
  sum.median_latency_ms = quantile(latencies, 0.5);
  sum.p99_latency_ms = quantile(latencies, 0.99);
  // Contention steps: changes at one time form one step; it counts when any of them added load or
  // tightened a budget. It needs a switch when the branch running into it misses the budget on one
  // of its first kEvidence requests after it (or the loop switched before any request started).
  // Its delay: to the first request on a smaller branch (fewer MACs) before the next change; an
  // upgrade right after a step is not a reaction to it, and a switch down that no violation
  // called for is listed but not timed.
  constexpr size_t kEvidence = 5;
  std::vector<double> delays;
  for (size_t i = 1; i < run.changes.size(); ++i) {
    if (i > 1 && run.changes[i].t_ms == run.changes[i - 1].t_ms) continue;  // counted with i-1
    bool contention = false;
    std::string what;
    size_t j = i;
    for (; j < run.changes.size() && run.changes[j].t_ms == run.changes[i].t_ms; ++j) {
      contention = contention || run.changes[j].contention;
      what += (what.empty() ? "" : ", ") + run.changes[j].text;
    }
    if (!contention) continue;
    ++sum.contention_steps;
    const double begin = run.changes[i].t_ms;
    const double end = j < run.changes.size() ? run.changes[j].t_ms : kInf;
    const StepOutcome step = classify_step(begin, end, requests, switches, kEvidence);
    sum.steps_needing_switch += step.needed;
    auto name = [&](int branch) { return w.costs[static_cast<size_t>(branch)].name.c_str(); };
    std::string outcome;
    if (step.down) {
      const double delay = step.down->t_ms - begin;
      outcome = format("%s -> %s after %.0f ms", name(step.down->from), name(step.down->to), delay);
      if (step.needed)
        delays.push_back(delay);
      else
        outcome += format(" (not needed: no violation on the %zu request%s before it)", step.seen,
                          step.seen == 1 ? "" : "s");
    } else if (step.needed) {
      outcome = format("no switch down, although %s missed the budget on %zu of %zu requests",
                       name(step.running), step.missed, step.seen);
    } else {
      outcome =
          format("no switch down (none needed: no violation on the first %zu requests)", step.seen);
    }
    sum.steps_report +=
        format("  t=%6.2f s  %-40s %s\n", begin / 1000, what.c_str(), outcome.c_str());
  }
  sum.steps_followed_by_switch = delays.size();
  if (!delays.empty()) sum.median_step_to_switch_ms = quantile(delays, 0.5);
  return sum;
}

// Branch ranks for the picture: fewest MACs at the bottom.
std::vector<int> branch_ranks(const std::vector<BranchCosts>& costs) {
  std::vector<int> order(costs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return size_key(costs[a]) < size_key(costs[b]); });
  std::vector<int> rank(costs.size());
  for (size_t r = 0; r < order.size(); ++r)
    rank[static_cast<size_t>(order[r])] = static_cast<int>(r);
  return rank;
}

double nice_step(double range, int ticks) {
  const double raw = range / std::max(1, ticks);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * magnitude) return m * magnitude;
  return 10 * magnitude;
}

std::string trace_svg(const PolicyRun& run, const std::vector<TraceRow>& rows,
                      const PolicySummary& sum, const Scenario& s, const Workload& w) {
  const double width = 1000, left = 150, right = 20, plot_w = width - left - right;
  const double lat_top = 60, lat_h = 220, br_top = 310, br_h = 150, acc_top = 490, acc_h = 150;
  const double height = acc_top + acc_h + 50;
  const double duration_ms = s.duration_s * 1000;
  auto x_of = [&](double t_ms) { return left + plot_w * std::clamp(t_ms / duration_ms, 0.0, 1.0); };
  std::ostringstream o;
  o << format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"11\">\n",
      width, height, width, height);
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << left << "\" y=\"18\" font-size=\"14\" font-weight=\"bold\">"
    << xml_escape(s.name + ": " + policy_name(run.policy) +
                  (run.fixed_branch >= 0 ? " (" + sum.branch + ")" : ""))
    << "</text>\n";
  const double viol_pct = sum.requests ? 100.0 * sum.violations / sum.requests : 0;
  const double acc_pct = sum.images ? 100.0 * sum.correct / sum.images : 0;
  o << "<text x=\"" << left << "\" y=\"34\">"
    << xml_escape(format("%zu requests of %d images, %.1f%% over the latency budget, accuracy "
                         "%.2f%%, %zu switches",
                         sum.requests, s.frame_images, viol_pct, acc_pct, sum.switches))
    << "</text>\n";

  // Contention phases: burners shaded orange (darker with more), balloons blue.
  for (size_t i = 0; i < run.changes.size(); ++i) {
    const StateChange& c = run.changes[i];
    const double begin = c.t_ms;
    const double end = i + 1 < run.changes.size() ? run.changes[i + 1].t_ms : duration_ms;
    if (end <= begin) continue;
    const double x0 = x_of(begin), x1 = x_of(end);
    if (c.burners > 0)
      o << format(
          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#f28e2b\" "
          "fill-opacity=\"%.2f\"/>\n",
          x0, lat_top, x1 - x0, acc_top + acc_h - lat_top, std::min(0.45, 0.1 * c.burners));
    if (c.balloon_mib > 0)
      o << format(
          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4e79a7\" "
          "fill-opacity=\"0.15\"/>\n",
          x0, lat_top, x1 - x0, acc_top + acc_h - lat_top);
  }
  // Event markers with their action, staggered so that close events stay readable.
  for (size_t i = 1; i < run.changes.size(); ++i) {
    const double x = x_of(run.changes[i].t_ms);
    o << format(
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" "
        "stroke-dasharray=\"3,3\" stroke-width=\"0.8\"/>\n",
        x, lat_top - 8, x, acc_top + acc_h);
    o << format("<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" fill=\"#333\">", x + 2,
                lat_top - 10 - 9.0 * ((i - 1) % 2))
      << xml_escape(run.changes[i].text) << "</text>\n";
  }

  // Panel frames and titles.
  auto panel = [&](double top, double h, const std::string& title) {
    o << format(
        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
        "stroke=\"#999\"/>\n",
        left, top, plot_w, h);
    o << format("<text x=\"10\" y=\"%.1f\" font-weight=\"bold\">", top - 8) << xml_escape(title)
      << "</text>\n";
  };
  panel(lat_top, lat_h, "latency (ms/request)");
  panel(br_top, br_h, "branch");
  panel(acc_top, acc_h, "rolling accuracy (1 s)");

  // Latency: observed (red when over budget), predicted, budget.
  double y_max = 0;
  for (const StateChange& c : run.changes)
    if (std::isfinite(c.budgets.latency_ms)) y_max = std::max(y_max, 2.0 * c.budgets.latency_ms);
  if (y_max <= 0) y_max = 1.2 * std::max(1e-3, sum.p99_latency_ms);
  auto y_lat = [&](double ms) { return lat_top + lat_h * (1 - std::clamp(ms / y_max, 0.0, 1.0)); };
  const double y_step = nice_step(y_max, 4);
  for (double v = 0; v <= y_max + 1e-9; v += y_step)
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", left - 4,
                y_lat(v) + 4, v);
  // At most about 4000 dots (every violation is drawn) and two line points per pixel column, so
  // that a run of many short requests still gives a picture of reasonable size.
  std::string predicted, tail;
  const size_t stride = std::max<size_t>(1, rows.size() / 4000);
  double last_line_x = -1;
  for (size_t i = 0; i < rows.size(); ++i) {
    const TraceRow& r = rows[i];
    const double x = x_of(r.frame->start_ms);
    if (r.violation || i % stride == 0)
      o << format("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.3\" fill=\"%s\"/>\n", x,
                  y_lat(r.frame->ms), r.violation ? "#e15759" : "#4e79a7");
    if (x - last_line_x < 0.5) continue;
    last_line_x = x;
    if (!std::isnan(r.predicted_ms)) predicted += format("%.1f,%.1f ", x, y_lat(r.predicted_ms));
    if (s.adaptation.selector.tail_latency && !std::isnan(r.predicted_tail_ms))
      tail += format("%.1f,%.1f ", x, y_lat(r.predicted_tail_ms));
  }
  if (!predicted.empty())
    o << "<polyline fill=\"none\" stroke=\"#59a14f\" stroke-width=\"1\" points=\"" << predicted
      << "\"/>\n";
  if (!tail.empty())
    o << "<polyline fill=\"none\" stroke=\"#59a14f\" stroke-width=\"0.8\" "
         "stroke-dasharray=\"4,2\" points=\""
      << tail << "\"/>\n";
  std::string budget;
  for (size_t i = 0; i < run.changes.size(); ++i) {
    const double ms = run.changes[i].budgets.latency_ms;
    if (!std::isfinite(ms)) continue;
    const double end = i + 1 < run.changes.size() ? run.changes[i + 1].t_ms : duration_ms;
    budget +=
        format("%.1f,%.1f %.1f,%.1f ", x_of(run.changes[i].t_ms), y_lat(ms), x_of(end), y_lat(ms));
  }
  if (!budget.empty())
    o << "<polyline fill=\"none\" stroke=\"black\" stroke-width=\"1.5\" points=\"" << budget
      << "\"/>\n";
  o << format(
      "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\"><tspan fill=\"#4e79a7\">&#9679; observed"
      "</tspan>  <tspan fill=\"#e15759\">&#9679; over budget</tspan>  <tspan fill=\"#59a14f\">"
      "&#8212; predicted (- - tail)</tspan>  &#8212; budget  <tspan fill=\"#f28e2b\">&#9632; "
      "CPU burners</tspan>  <tspan fill=\"#4e79a7\">&#9632; memory balloon</tspan></text>\n",
      left + plot_w - 580, lat_top + lat_h + 16);

  // Branch over time (one row per branch, fewest MACs at the bottom).
  const std::vector<int> rank = branch_ranks(w.costs);
  const size_t n = w.costs.size();
  auto y_branch = [&](int branch) {
    return br_top + br_h - (rank[static_cast<size_t>(branch)] + 0.5) * br_h / n;
  };
  for (size_t b = 0; b < n; ++b)
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"10\">", left - 4,
                y_branch(static_cast<int>(b)) + 3)
      << xml_escape(w.costs[b].name) << "</text>\n";
  std::string steps;
  int last = -1;
  for (const TraceRow& r : rows) {
    const double x = x_of(r.frame->start_ms);
    if (r.frame->branch != last && last >= 0) steps += format("%.1f,%.1f ", x, y_branch(last));
    if (r.frame->branch != last) steps += format("%.1f,%.1f ", x, y_branch(r.frame->branch));
    last = r.frame->branch;
  }
  if (last >= 0) steps += format("%.1f,%.1f", x_of(duration_ms), y_branch(last));
  o << "<polyline fill=\"none\" stroke=\"#76b7b2\" stroke-width=\"2\" points=\"" << steps
    << "\"/>\n";

  // Rolling accuracy over the requests of the last second.
  std::vector<std::pair<double, double>> acc;  // t, percent
  size_t begin = 0, images = 0, right_count = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    images += static_cast<size_t>(s.frame_images);
    right_count += static_cast<size_t>(rows[i].frame->correct);
    while (rows[i].frame->start_ms - rows[begin].frame->start_ms > 1000) {
      images -= static_cast<size_t>(s.frame_images);
      right_count -= static_cast<size_t>(rows[begin].frame->correct);
      ++begin;
    }
    if (rows[i].frame->start_ms >= 1000 && images > 0)
      acc.emplace_back(rows[i].frame->start_ms, 100.0 * right_count / images);
  }
  double acc_lo = 100;
  for (const auto& a : acc) acc_lo = std::min(acc_lo, a.second);
  acc_lo = std::max(0.0, std::floor(acc_lo / 5) * 5 - 5);
  auto y_acc = [&](double pct) {
    return acc_top + acc_h * (1 - std::clamp((pct - acc_lo) / (100 - acc_lo), 0.0, 1.0));
  };
  const double acc_step = nice_step(100 - acc_lo, 4);
  for (double v = acc_lo; v <= 100 + 1e-9; v += acc_step)
    o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g%%</text>\n", left - 4,
                y_acc(v) + 4, v);
  std::string acc_points;
  // One point per pixel column keeps the file small.
  double last_x = -1;
  for (const auto& a : acc) {
    const double x = x_of(a.first);
    if (x - last_x < 1) continue;
    last_x = x;
    acc_points += format("%.1f,%.1f ", x, y_acc(a.second));
  }
  o << "<polyline fill=\"none\" stroke=\"#b07aa1\" stroke-width=\"1.2\" points=\"" << acc_points
    << "\"/>\n";

  // Time axis.
  const double t_step = nice_step(s.duration_s, 8);
  for (double t = 0; t <= s.duration_s + 1e-9; t += t_step) {
    const double x = x_of(t * 1000);
    o << format(
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>\n"
        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
        x, acc_top + acc_h, x, acc_top + acc_h + 5, x, acc_top + acc_h + 18, t);
  }
  o << format("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">time (s)</text>\n",
              left + plot_w / 2, acc_top + acc_h + 36);
  o << "</svg>\n";
  return o.str();
}

}  // namespace

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
  }
  return "?";
}

std::vector<Policy> parse_policies(const std::string& text) {
  const Policy all[] = {Policy::kAdaptive, Policy::kLargest, Policy::kSmallest, Policy::kHindsight};
  if (text == "all") return {std::begin(all), std::end(all)};
  std::vector<Policy> out;
  std::istringstream items(text);
  for (std::string item; std::getline(items, item, ',');) {
    const Policy* found = std::find_if(std::begin(all), std::end(all),
                                       [&](Policy p) { return item == policy_name(p); });
    if (found == std::end(all))
      throw ScenarioError("--policy: unknown policy '" + item +
                          "' (adaptive, largest, smallest, hindsight or all)");
    if (std::find(out.begin(), out.end(), *found) == out.end()) out.push_back(*found);
  }
  if (out.empty()) throw ScenarioError("--policy needs a policy");
  return out;
}

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool interrupted() { return g_interrupted.load(); }

void write_file_atomically(const std::string& path, const std::string& content) {
  // Temporaries that a killed run left next to the file go first.
  base::remove_stale_temps(path);
  std::string error;
  if (!base::write_file_atomic(path, content.data(), content.size(), &error))
    throw ScenarioError("cannot write the trace '" + path + "': " + error);
}

std::string format_summary(const Scenario& s, const std::vector<PolicySummary>& summaries) {
  std::ostringstream o;
  o << format(
      "scenario %s: %.1f s, requests of %d images, latency budget %s ms per request\n",
      s.name.c_str(), s.duration_s, s.frame_images,
      std::isfinite(s.budgets.latency_ms) ? format("%g", s.budgets.latency_ms).c_str() : "none");
  o << format("%-10s %-14s %8s %8s %10s %8s %9s %8s %14s %9s %9s %10s\n", "policy", "branch",
              "requests", "images", "violations", "mem-viol", "accuracy", "switches",
              "step->switch", "p50 ms", "p99 ms", "mJ/request");
  for (const PolicySummary& p : summaries) {
    const double requests = std::max<size_t>(p.requests, 1);
    std::string step = "-";
    if (p.policy == Policy::kAdaptive)
      step = p.median_step_to_switch_ms >= 0
                 ? format("%.0f ms (%zu/%zu)", p.median_step_to_switch_ms,
                          p.steps_followed_by_switch, p.steps_needing_switch)
                 : format("none (0/%zu)", p.steps_needing_switch);
    o << format("%-10s %-14s %8zu %8zu %9.2f%% %7.2f%% %8.2f%% %8zu %14s %9.2f %9.2f %10.3f\n",
                policy_name(p.policy), p.branch.c_str(), p.requests, p.images,
                100.0 * p.violations / requests, 100.0 * p.memory_violations / requests,
                p.images ? 100.0 * p.correct / p.images : 0.0, p.switches, step.c_str(),
                p.median_latency_ms, p.p99_latency_ms, p.energy_mj / requests);
  }
  return o.str();
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
    for (size_t b = 0; b < w.costs.size(); ++b) warm.run(static_cast<int>(b), &correct);
  }
  std::string report;
  std::vector<PolicySummary> summaries;
  for (Policy policy : options.policies) {
    check_interrupt();
    int fixed = -1;
    if (policy == Policy::kLargest) fixed = extreme_branch(w.costs, true);
    if (policy == Policy::kSmallest) fixed = extreme_branch(w.costs, false);
    if (policy == Policy::kHindsight) fixed = calibrate_hindsight(s, w, options.verbose, &report);
    const PolicyRun run = run_policy(s, w, policy, fixed, options.verbose);
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
  }
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
