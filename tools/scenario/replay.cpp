#include "tools/scenario/replay.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <mutex>
#include <thread>

#include "runtime/adapt/adaptation_loop.h"
#include "tools/scenario/contention.h"

namespace adascale::scenario {
namespace {

std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void on_interrupt(int) { g_interrupted.store(true); }

// Plays the timeline on its own thread and samples the loop's context for the trace. The
// contention processes belong to that thread (they die with it, see contention.h) and are
// killed and reaped before it ends, on every path.
class Driver {
 public:
  // drive_load false: the load events are recorded but played by another app (app_link.h)
  Driver(const Scenario& s, AdaptationLoop* loop, double t0_ms, bool drive_load)
      : s_(s), loop_(loop), t0_(t0_ms), drive_load_(drive_load), thread_(&Driver::run, this) {}
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
      int burners = 0;  // as the timeline has them, driven here or not
      std::vector<double> balloons;
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
              if (drive_load_) processes.start_burners(e.count);
              burners += e.count;
              state.contention = true;
              break;
            case EventKind::kStopBurners:
              if (drive_load_) processes.stop_burners(e.count);
              burners = std::max(0, burners - e.count);
              break;
            case EventKind::kAllocateBalloon:
              // filled while this thread goes on sampling: the trace's context and predictions
              // during the fill are the loop's, not those from before the event
              if (drive_load_) processes.start_balloon(e.mib);
              balloons.push_back(e.mib);
              state.contention = true;
              break;
            case EventKind::kReleaseBalloon:
              if (drive_load_) processes.release_balloon();
              if (!balloons.empty()) balloons.pop_back();
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
          state.burners = burners;
          state.balloon_mib = 0;
          for (double mib : balloons) state.balloon_mib += mib;
          changes_.push_back(state);
        }
        processes.poll_balloons();  // throws when a balloon failed
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
  const bool drive_load_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  std::vector<StateChange> changes_;
  std::vector<ContextRow> context_;
  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

void check_interrupt() {
  if (g_interrupted.load()) throw ScenarioError("interrupted");
}

std::unique_ptr<AdaptationLoop> start_loop(const Scenario& s, const Workload& w) {
  AdaptationOptions options = s.adaptation;
  options.max_threads = w.threads;
  auto loop = std::make_unique<AdaptationLoop>(w.costs, options);
  const Status budgets = loop->set_budgets(per_image_budgets(s.budgets, s.frame_images));
  if (!budgets.ok()) throw ScenarioError(s.path + ": initial budgets rejected: " + budgets.message);
  const Status started = loop->start();
  if (!started.ok()) throw ScenarioError("adaptation loop: " + started.message);
  return loop;
}

LoopChoice loop_choice(AdaptationLoop& loop) {
  LoopChoice choice = loop.current();
  if (choice.branch < 0) {
    loop.step();  // the thread has not decided yet
    choice = loop.current();
  }
  if (choice.branch < 0) throw ScenarioError("the adaptation loop chose no branch");
  return choice;
}

PolicyRun run_policy(const Scenario& s, const Workload& w, Policy policy, int fixed_branch,
                     bool verbose, const std::vector<ScheduledBranch>& schedule, bool drive_load) {
  PolicyRun out;
  out.policy = policy;
  out.fixed_branch = fixed_branch;
  // Every policy runs the loop, so each pays the same sampling cost and the trace has the same
  // context signals and predictions; only the adaptive one follows its choice.
  const std::unique_ptr<AdaptationLoop> owned = start_loop(s, w);
  AdaptationLoop& loop = *owned;

  FrameRunner runner(w, s.frame_images);
  double t0 = -1;  // the timeline's start, once the settle phase is over
  auto choice_now = [&]() {
    auto fixed = [&](int branch) { return LoopChoice{branch, w.fixed_threads, branch}; };
    if (fixed_branch >= 0) return fixed(fixed_branch);
    if (!schedule.empty()) {
      // by the clock, not by the driver's events: the oracle switches right at a boundary
      const double t_s = t0 < 0 ? 0 : (now_ms() - t0) / 1000;
      size_t i = 0;
      while (i + 1 < schedule.size() && schedule[i + 1].begin_s <= t_s) ++i;
      return fixed(schedule[i].branch);
    }
    return loop_choice(loop);
  };
  auto request = [&](Frame* frame) {
    const LoopChoice choice = choice_now();
    frame->branch = choice.branch;
    frame->threads = choice.threads;
    frame->entry = choice.entry;
    frame->ms = runner.run(frame->branch, frame->threads, &frame->correct);
    loop.report_latency(frame->branch, frame->ms / s.frame_images, frame->threads);
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
  const LoopChoice settled =
      frame.branch >= 0 ? LoopChoice{frame.branch, frame.threads, frame.entry} : choice_now();
  out.settled_branch = settled.branch;
  out.settled_threads = settled.threads;
  runner.rewind();

  t0 = now_ms();
  {
    Driver driver(s, &loop, t0, drive_load);
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

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool interrupted() { return g_interrupted.load(); }

}  // namespace adascale::scenario
