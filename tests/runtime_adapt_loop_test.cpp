// AdaptationLoop: stepping, switch events, latency feedback, the background thread.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/adapt/adaptation_loop.h"
#include "runtime_adapt_test_util.h"

namespace adascale {
namespace {

using testing::FixtureRoot;

// An idle two-core machine with plenty of memory: context scaling is exactly 1.
void write_idle_machine(const FixtureRoot& fixture) {
  fixture.write("proc/stat",
                "cpu  100 0 100 1000 0 0 0 0 0 0\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n"
                "procs_running 1\n");
  fixture.write("proc/meminfo", "MemTotal: 8000000 kB\nMemAvailable: 6000000 kB\n");
}

std::vector<BranchCosts> three_branches() {
  std::vector<BranchCosts> branches(3);
  const char* names[] = {"small", "medium", "large"};
  const double latency[] = {0.5, 2.0, 8.0};
  const double accuracy[] = {0.60, 0.75, 0.90};
  for (int i = 0; i < 3; ++i) {
    branches[i].name = names[i];
    branches[i].latency_median_ms = latency[i];
    branches[i].accuracy = accuracy[i];
    branches[i].memory_bytes = 1000.0 * (i + 1);
  }
  return branches;
}

AdaptationOptions fixture_options(const FixtureRoot& fixture) {
  AdaptationOptions options;
  options.monitor.root = fixture.root();
  options.monitor.probe_period_ms = 0;
  options.monitor.period_ms = 5;
  options.selector.min_dwell_ms = 0;
  return options;
}

TEST(AdaptationLoopTest, StepPublishesTheChoiceAndReportsSwitches) {
  FixtureRoot fixture("loop_step");
  write_idle_machine(fixture);
  AdaptationLoop loop(three_branches(), fixture_options(fixture));
  std::vector<SwitchEvent> events;
  loop.set_switch_callback([&](const SwitchEvent& e) { events.push_back(e); });
  EXPECT_EQ(loop.current_branch(), -1);

  Budgets budgets;
  budgets.latency_ms = 3;
  ASSERT_TRUE(loop.set_budgets(budgets).ok());
  budgets.latency_ms = -3;
  EXPECT_FALSE(loop.set_budgets(budgets).ok());
  loop.step();
  EXPECT_EQ(loop.current_branch(), 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].from, -1);
  EXPECT_EQ(events[0].to_name, "medium");
  EXPECT_EQ(events[0].reason, SwitchReason::kInitial);
  EXPECT_DOUBLE_EQ(events[0].predicted_ms, 2.0);

  // A looser budget lets the large branch in.
  budgets.latency_ms = 10;
  ASSERT_TRUE(loop.set_budgets(budgets).ok());
  loop.step();
  EXPECT_EQ(loop.current_branch(), 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].from_name, "medium");
  EXPECT_EQ(events[1].reason, SwitchReason::kBetter);

  // A memory budget from the sample: 6 GB available minus a margin that leaves 1500 bytes.
  budgets.memory_mode = MemoryBudgetMode::kAvailableMinusMargin;
  budgets.memory_bytes = 6000000.0 * 1024 - 1500;
  ASSERT_TRUE(loop.set_budgets(budgets).ok());
  loop.step();
  EXPECT_EQ(loop.current_branch(), 0);
  EXPECT_EQ(events.back().reason, SwitchReason::kInfeasible);
  EXPECT_EQ(loop.stats().iterations, 3u);
  EXPECT_EQ(loop.stats().switches, 3u);
  ASSERT_TRUE(loop.last_sample().cpu_count);
  EXPECT_EQ(loop.last_estimates().size(), 3u);
}

TEST(AdaptationLoopTest, ObservedLatenciesCorrectPredictionsAndTriggerSwitches) {
  FixtureRoot fixture("loop_feedback");
  write_idle_machine(fixture);
  AdaptationLoop loop(three_branches(), fixture_options(fixture));
  std::vector<SwitchEvent> events;
  loop.set_switch_callback([&](const SwitchEvent& e) { events.push_back(e); });
  Budgets budgets;
  budgets.latency_ms = 3;
  ASSERT_TRUE(loop.set_budgets(budgets).ok());
  loop.step();
  ASSERT_EQ(loop.current_branch(), 1);
  // The device turns out twice as slow as the catalog: medium takes 4 ms.
  for (int i = 0; i < 10; ++i) loop.report_latency(1, 4.0);
  loop.report_latency(1, -1);  // ignored
  loop.report_latency(99, 1);  // ignored
  loop.step();
  EXPECT_EQ(loop.current_branch(), 0);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].from_name, "medium");
  EXPECT_EQ(events[1].to_name, "small");
  EXPECT_EQ(events[1].reason, SwitchReason::kInfeasible);
  EXPECT_DOUBLE_EQ(events[1].observed_ms, 4.0);
  EXPECT_NEAR(events[1].from_predicted_ms, 4.0, 1e-9);
  EXPECT_NEAR(events[1].predicted_ms, 1.0, 1e-9);  // the device-wide correction applies
  const PredictionErrorStats errors = loop.prediction_errors();
  EXPECT_EQ(errors.count, 10u);
  EXPECT_NEAR(errors.median_uncorrected, 0.5, 1e-9);
  EXPECT_LT(errors.median_corrected, errors.median_uncorrected);
  EXPECT_EQ(loop.stats().observations, 10u);
}

// A run-queue snapshot with more tasks than the one before is a new load or a passing task: the
// loop neither steps down for it nor learns from the latencies of that period until the next
// sample shows it again.
TEST(AdaptationLoopTest, ARunnableTaskCountsOnceItHolds) {
  FixtureRoot fixture("loop_runnable");
  auto write_runnable = [&](int procs_running) {
    fixture.write("proc/stat",
                  "cpu  100 0 100 1000 0 0 0 0 0 0\ncpu0 1 1 1 1\ncpu1 1 1 1 1\nprocs_running " +
                      std::to_string(procs_running) + "\n");
  };
  write_idle_machine(fixture);
  fixture.write("proc/self/task/1/stat", "1 (loop) R 1 1 1 0 -1\n");  // the sampling thread
  AdaptationLoop loop(three_branches(), fixture_options(fixture));
  Budgets budgets;
  budgets.latency_ms = 10;
  ASSERT_TRUE(loop.set_budgets(budgets).ok());
  loop.step();
  ASSERT_EQ(loop.current_branch(), 2);  // large, 8 ms

  // three other tasks at one sample: 4 threads on 2 cores would make large take 16 ms
  write_runnable(4);
  loop.report_latency(2, 8.0);
  loop.step();
  EXPECT_EQ(loop.current_branch(), 2);
  EXPECT_EQ(loop.prediction_errors().count, 0u);  // not learnt: the context is not known yet
  EXPECT_EQ(loop.stats().observations, 1u);
  // gone at the next: nothing changed
  write_runnable(1);
  loop.report_latency(2, 8.0);
  loop.step();
  EXPECT_EQ(loop.current_branch(), 2);
  EXPECT_EQ(loop.prediction_errors().count, 1u);

  // the same count at two samples in a row is a load: down to medium
  write_runnable(4);
  loop.step();
  EXPECT_EQ(loop.current_branch(), 2);
  write_runnable(4);
  loop.step();
  EXPECT_EQ(loop.current_branch(), 1);

  // every snapshot counts without sustained_runnable
  AdaptationOptions snapshots = fixture_options(fixture);
  snapshots.device.sustained_runnable = false;
  write_runnable(1);
  AdaptationLoop eager(three_branches(), snapshots);
  ASSERT_TRUE(eager.set_budgets(budgets).ok());
  eager.step();
  ASSERT_EQ(eager.current_branch(), 2);
  write_runnable(4);
  eager.step();
  EXPECT_EQ(eager.current_branch(), 1);
}

TEST(AdaptationLoopTest, BackgroundThreadRunsAtItsPeriodAndStops) {
  FixtureRoot fixture("loop_thread");
  write_idle_machine(fixture);
  AdaptationLoop loop(three_branches(), fixture_options(fixture));
  std::atomic<int> switches{0};
  loop.set_switch_callback([&](const SwitchEvent&) { ++switches; });
  ASSERT_TRUE(loop.start().ok());
  EXPECT_TRUE(loop.running());
  EXPECT_TRUE(loop.start().ok());  // idempotent
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (loop.stats().iterations < 5 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  loop.stop();
  EXPECT_FALSE(loop.running());
  const uint64_t iterations = loop.stats().iterations;
  EXPECT_GE(iterations, 5u);
  EXPECT_EQ(switches.load(), 1);  // the initial choice only: nothing changed
  EXPECT_EQ(loop.current_branch(), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(loop.stats().iterations, iterations);  // really stopped
  ASSERT_TRUE(loop.start().ok());                  // restartable
  loop.stop();
}

// small, medium and large, where large runs faster on 2 and on 4 threads but not on 3, and
// medium is slower on 2 threads than on one
std::vector<BranchCosts> branches_with_threads() {
  std::vector<BranchCosts> branches = three_branches();
  branches[1].latency_by_threads = {{2, 2.5, 2.6}};
  branches[2].latency_by_threads = {{2, 4.5, 4.8}, {3, 5.0, 5.2}, {4, 3.0, 3.2}};
  return branches;
}

TEST(AdaptationLoopTest, ChoicesHoldOnlyThreadCountsTheCatalogShowsFaster) {
  auto described = [](const std::vector<LoopChoice>& choices) {
    std::string out;
    for (const LoopChoice& c : choices)
      out += std::to_string(c.branch) + "x" + std::to_string(c.threads) + " ";
    return out;
  };
  // 3 threads (5.0 ms) is slower than 2 (4.5): never a choice; medium on 2 never either
  EXPECT_EQ(described(loop_choices(branches_with_threads(), 4)), "0x1 1x1 2x1 2x2 2x4 ");
  EXPECT_EQ(described(loop_choices(branches_with_threads(), 3)), "0x1 1x1 2x1 2x2 ");
  // one thread, or no thread latencies: the branches on the session's own count
  EXPECT_EQ(described(loop_choices(branches_with_threads(), 1)), "0x0 1x0 2x0 ");
  EXPECT_EQ(described(loop_choices(three_branches(), 4)), "0x0 1x0 2x0 ");
  FixtureRoot fixture("loop_choices");
  write_idle_machine(fixture);
  AdaptationOptions options = fixture_options(fixture);
  options.max_threads = 4;
  const AdaptationLoop loop(branches_with_threads(), options);
  EXPECT_EQ(described(loop.choices()), described(loop_choices(branches_with_threads(), 4)));
  EXPECT_EQ(loop.branch_count(), 3u);  // branch indices stay the bundle's
}

TEST(AdaptationLoopTest, ThreadsAreChosenWithTheBranchOnlyWhereCoresAreFree) {
  FixtureRoot fixture("loop_threads");
  write_idle_machine(fixture);  // two cores, nothing else runnable
  AdaptationOptions options = fixture_options(fixture);
  options.max_threads = 4;
  AdaptationLoop loop(branches_with_threads(), options);
  std::vector<SwitchEvent> events;
  loop.set_switch_callback([&](const SwitchEvent& e) { events.push_back(e); });
  Budgets budgets;
  budgets.latency_ms = 6;  // large fits on 2 threads (4.5 ms) only; 4 threads need 4 free cores
  ASSERT_TRUE(loop.set_budgets(budgets).ok());
  loop.step();
  LoopChoice choice = loop.current();
  EXPECT_EQ(choice.branch, 2);
  EXPECT_EQ(choice.threads, 2);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].to_name, "large");
  EXPECT_EQ(events[0].to_threads, 2);

  // an observation on 2 threads goes to that entry; one on a count the loop does not choose from
  // (medium on 2 threads: slower than one) is dropped
  loop.report_latency(2, 4.4, 2);
  loop.report_latency(1, 2.0, 2);
  loop.step();
  EXPECT_EQ(loop.stats().observations, 1u);

  // two other runnable processes take both cores: one thread only, so large no longer fits and
  // the loop steps down to a branch on one thread
  fixture.write("proc/stat",
                "cpu  100 0 100 1000 0 0 0 0 0 0\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n"
                "procs_running 3\n");
  loop.step();
  choice = loop.current();
  EXPECT_EQ(choice.branch, 1);
  EXPECT_EQ(choice.threads, 1);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].from_threads, 2);
  EXPECT_EQ(events[1].to_threads, 1);
  EXPECT_EQ(events[1].reason, SwitchReason::kInfeasible);

  // the load ends: back on large, on 2 threads
  write_idle_machine(fixture);
  for (int i = 0; i < 5 && loop.current().threads != 2; ++i) loop.step();
  EXPECT_EQ(loop.current().branch, 2);
  EXPECT_EQ(loop.current().threads, 2);
}

// More threads only where fewer do not fit: the cores stay free for the rest of the device, and
// a change of threads under load is a switch too.
TEST(AdaptationLoopTest, MoreThreadsOnlyWhereFewerDoNotFit) {
  FixtureRoot fixture("loop_threads_needed");
  write_idle_machine(fixture);
  AdaptationOptions options = fixture_options(fixture);
  options.max_threads = 2;
  std::vector<BranchCosts> branches = three_branches();
  branches[2].latency_median_ms = 4.0;
  branches[2].latency_by_threads = {{2, 2.0, 2.2}};
  AdaptationLoop loop(branches, options);
  Budgets budgets;
  budgets.latency_ms = 10;
  ASSERT_TRUE(loop.set_budgets(budgets).ok());
  loop.step();
  EXPECT_EQ(loop.current().branch, 2);
  EXPECT_EQ(loop.current().threads, 1);  // fits on one: two would be faster, but not needed
  budgets.latency_ms = 3;
  ASSERT_TRUE(loop.set_budgets(budgets).ok());
  loop.step();
  EXPECT_EQ(loop.current().branch, 2);
  EXPECT_EQ(loop.current().threads, 2);
  // the budget loosens: fewer threads would be as good, but that alone is not worth a switch
  budgets.latency_ms = 10;
  ASSERT_TRUE(loop.set_budgets(budgets).ok());
  loop.step();
  EXPECT_EQ(loop.current().branch, 2);
  EXPECT_EQ(loop.current().threads, 2);
}

TEST(AdaptationLoopTest, NoBranchesCannotStart) {
  AdaptationLoop loop({});
  EXPECT_FALSE(loop.start().ok());
  loop.step();  // harmless
  EXPECT_EQ(loop.current_branch(), -1);
}

}  // namespace
}  // namespace adascale
