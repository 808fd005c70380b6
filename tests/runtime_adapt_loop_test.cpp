// AdaptationLoop: stepping, switch events, latency feedback, the background thread.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
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

TEST(AdaptationLoopTest, NoBranchesCannotStart) {
  AdaptationLoop loop({});
  EXPECT_FALSE(loop.start().ok());
  loop.step();  // harmless
  EXPECT_EQ(loop.current_branch(), -1);
}

}  // namespace
}  // namespace adascale
