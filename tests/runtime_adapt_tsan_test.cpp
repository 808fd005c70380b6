// Race check for the adaptation loop, built with -fsanitize=thread: the loop thread steps at
// 1 ms while run-path threads read the choice and report latencies, and a control thread changes
// budgets and reads results. ThreadSanitizer fails the test on any data race.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "runtime/adapt/adaptation_loop.h"

namespace adascale {
namespace {

TEST(AdaptationLoopTsanTest, ConcurrentRunFeedbackAndControl) {
  std::vector<BranchCosts> branches(8);
  for (size_t i = 0; i < branches.size(); ++i) {
    branches[i].name = "b" + std::to_string(i);
    branches[i].latency_median_ms = 0.2 * (i + 1);
    branches[i].accuracy = 0.5 + 0.05 * i;
    branches[i].memory_bytes = 1e6 * (i + 1);
    branches[i].macs = 1e6 * (i + 1);
  }
  AdaptationOptions options;
  options.monitor.period_ms = 1;
  options.monitor.probe_period_ms = 20;
  options.monitor.probe_bytes = 32 << 10;
  options.monitor.bandwidth_bytes = 256 << 10;
  options.selector.min_dwell_ms = 0;
  options.selector.switch_margin = 0;
  AdaptationLoop loop(branches, options);
  std::atomic<int> events{0};
  loop.set_switch_callback([&](const SwitchEvent& e) {
    if (e.to >= 0) ++events;
  });
  ASSERT_TRUE(loop.start().ok());

  std::atomic<bool> done{false};
  std::atomic<uint64_t> runs{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      uint64_t n = 0;
      while (!done.load()) {
        const int branch = loop.current_branch();
        if (branch >= 0) loop.report_latency(branch, 0.1 + 0.3 * branch + 0.01 * t);
        if (++n % 64 == 0) std::this_thread::yield();
      }
      runs += n;
    });
  }
  threads.emplace_back([&] {
    int i = 0;
    while (!done.load()) {
      Budgets b;
      b.latency_ms = 0.5 + (i++ % 5);
      loop.set_budgets(b);
      (void)loop.last_sample();
      (void)loop.last_estimates();
      (void)loop.prediction_errors();
      (void)loop.stats();
      loop.step();  // serialized with the loop thread
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  loop.stop();
  ASSERT_TRUE(loop.start().ok());  // restart while the others keep going
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  done = true;
  for (auto& thread : threads) thread.join();
  loop.stop();

  EXPECT_GT(loop.stats().iterations, 10u);
  EXPECT_GT(loop.stats().observations, 0u);
  EXPECT_GT(events.load(), 1);
  EXPECT_GT(runs.load(), 0u);
}

}  // namespace
}  // namespace adascale
