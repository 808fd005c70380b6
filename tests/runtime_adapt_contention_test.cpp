// Contention model (runtime/adapt/contention_model.h): branches of different sizes slowed by a
// load as base x share + a fixed wait, which no single multiplicative factor predicts for both;
// the return to the idle prediction when the load ends; probing a larger branch under load.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "runtime/adapt/profiler.h"
#include "runtime/adapt/selector.h"
#include "runtime_adapt_estimates.h"

namespace adascale {
namespace {

BranchCosts branch(const std::string& name, double median_ms) {
  BranchCosts c;
  c.name = name;
  c.latency_median_ms = median_ms;
  return c;
}

ContextSample context(double others_busy) {
  ContextSample s;
  s.cpu_count = 2;
  s.cpu_utilization = others_busy / 2;
  s.process_cpu_utilization = 0.0;
  s.others_cpu_utilization = others_busy / 2;
  s.frequency_ratio = 1.0;
  return s;
}

// What the load does: the fair share the context factor sees (1.5: two busy cores of others and
// one inference thread on two cores), and a 0.6 ms wait per request that it does not.
double loaded_ms(double catalog_ms) { return catalog_ms * 1.5 + 0.6; }

TEST(ContentionModelTest, LevelFitSeparatesTheShareFromTheWait) {
  LevelFit fit(0.95, 1.0);
  EXPECT_DOUBLE_EQ(fit.solve(1.3).alpha, 1.3);  // no data: the prior
  EXPECT_DOUBLE_EQ(fit.solve(1.3).gamma, 0.0);
  for (int i = 0; i < 200; ++i) {
    const double z = i % 2 ? 2.0 : 0.5;
    fit.add(z, 1.0 + 0.2 * z);
  }
  const LevelFit::Coefficients c = fit.solve(1.0);
  EXPECT_NEAR(c.alpha, 1.0, 0.02);
  EXPECT_NEAR(c.gamma, 0.2, 0.02);
  // One size only: the prior decides how the difference splits, and that size is still right.
  LevelFit one(0.95, 1.0);
  for (int i = 0; i < 200; ++i) one.add(2.0, 1.4);
  EXPECT_NEAR(one.solve(1.0).at(2.0), 1.4, 0.01);
}

TEST(ContentionModelTest, PredictsSmallAndLargeBranchesUnderLoadAndReturnsToIdle) {
  Profiler profiler({branch("small", 1.0), branch("large", 4.0)});
  const ContextSample idle = context(0), busy = context(2);
  const double factor = profiler.contention(busy).total();
  ASSERT_NEAR(factor, 1.5, 1e-12);
  // idle: both run at their catalog latency
  for (int i = 0; i < 20; ++i) {
    profiler.predict(idle);
    profiler.observe(static_cast<size_t>(i % 2), i % 2 ? 4.0 : 1.0, 1.0);
  }
  // loaded: the small branch runs, with a larger one tried now and then
  for (int i = 0; i < 60; ++i) {
    profiler.predict(busy);
    const size_t b = i % 4 == 3 ? 1 : 0;
    profiler.observe(b, loaded_ms(b ? 4.0 : 1.0), factor);
  }
  const std::vector<BranchEstimate>& e = profiler.predict(busy);
  // A single factor fitted to the small branch (2.1 / 1.5 = 1.4 over the context factor) would
  // predict 8.4 ms for the large one, 27% too slow; one fitted to both is off for both.
  EXPECT_NEAR(e[0].latency_ms, loaded_ms(1.0), 0.05 * loaded_ms(1.0));
  EXPECT_NEAR(e[1].latency_ms, loaded_ms(4.0), 0.05 * loaded_ms(4.0));
  EXPECT_GT(1.4 * 4.0 * 1.5, 1.2 * loaded_ms(4.0));
  // The load ends: the next prediction is the idle one (the idle level never learnt the load),
  // and idle observations keep it there.
  const std::vector<BranchEstimate>& after = profiler.predict(idle);
  EXPECT_NEAR(after[0].latency_ms, 1.0, 0.02);
  EXPECT_NEAR(after[1].latency_ms, 4.0, 0.08);
  for (int i = 0; i < 4; ++i) {
    profiler.predict(idle);
    profiler.observe(0, 1.0, 1.0);
  }
  EXPECT_NEAR(profiler.predict(idle)[1].latency_ms, 4.0, 0.08);
  EXPECT_NEAR(profiler.contention_multiplier(0, 1.0), 1.0, 0.02);
}

TEST(ContentionModelTest, TailsArePerBranchAndAWaitIsAddedNotScaled) {
  DeviceProfile device;
  device.tail_quantile = 0.9;
  Profiler profiler({branch("small", 1.0), branch("large", 4.0)}, device);
  const ContextSample busy = context(2);
  const double factor = profiler.contention(busy).total();
  // The small branch under load: one request in four waits 1.5 ms more.
  for (int i = 0; i < 40; ++i) {
    profiler.predict(busy);
    profiler.observe(0, i % 4 == 0 ? 3.0 : 1.5, factor);
  }
  const std::vector<BranchEstimate>& e = profiler.predict(busy);
  const double small_spread = e[0].latency_tail_ms / e[0].latency_ms;
  EXPECT_GT(small_spread, 1.4);
  // The large branch has no ring of its own: it gets the wait in ms, a smaller share of it.
  const double large_spread = e[1].latency_tail_ms / e[1].latency_ms;  // predictions, not timings
  EXPECT_LT(large_spread, small_spread);
  EXPECT_GT(e[1].latency_tail_ms, e[1].latency_ms);
}

// Under two burners on two cores an inference has a core to itself for a while, then shares one
// for a while (twice as slow). The contention model follows the phases; the tail must not, or a
// fast phase makes a larger branch look as if it fits and the next slow phase sends it back.
TEST(ContentionModelTest, ATailUnderLoadOutlastsAFastPhase) {
  auto tail_after_phases = [](bool steady) {
    DeviceProfile device;
    device.tail_quantile = 0.9;
    device.steady_contended_tail = steady;
    Profiler profiler({branch("small", 1.0)}, device);
    const ContextSample busy = context(2);
    const double factor = profiler.contention(busy).total();
    for (int i = 0; i < 60; ++i) {
      profiler.predict(busy);
      profiler.observe(0, i < 20 ? 3.0 : 1.5, factor);  // a slow phase, then a fast one
    }
    return profiler.predict(busy)[0];
  };
  const BranchEstimate steady = tail_after_phases(true), following = tail_after_phases(false);
  // predictions, not timings: the median follows the fast phase either way
  const double median = steady.latency_ms;
  EXPECT_LT(median, 2.0);
  EXPECT_NEAR(median, following.latency_ms, 1e-12);
  // a third of the last 60 requests took 3 ms: the 90th percentile is 3 ms
  const double steady_tail = steady.latency_tail_ms, following_tail = following.latency_tail_ms;
  EXPECT_NEAR(steady_tail, 3.0, 0.05);
  EXPECT_LT(following_tail, 0.9 * steady_tail);
}

using testing::latency_budget;

// a known branch whose slow requests take `tail` ms
BranchEstimate estimate(double latency, double tail, double accuracy) {
  BranchEstimate e = testing::estimate(latency, accuracy);
  e.latency_tail_ms = tail;
  return e;
}

// probing on a short clock: a dwell of 100 ms, a probe per second at most, tails judged
SelectorOptions probing_options(double probe_delay_ms) {
  SelectorOptions options;
  options.min_dwell_ms = 100;
  options.tail_latency = true;
  options.context_change = 0;
  options.probe_interval_ms = 1000;
  options.probe_delay_ms = probe_delay_ms;
  return options;
}

// branch 1 with its tail at `tail` against a 10 ms budget under load: never probed, never taken
void expect_never_probed(const SelectorOptions& options, std::vector<BranchEstimate> e,
                         double tail) {
  Selector selector(options);
  ASSERT_TRUE(selector.set_budgets(latency_budget(10)).ok());
  e[1].latency_tail_ms = tail;
  SelectionContext loaded;
  loaded.contention = 1.5;
  for (double t = 0; t < 5000; t += 100) EXPECT_EQ(selector.decide(e, loaded, t).branch, 0);
}

TEST(ContentionModelTest, ALargerBranchIsProbedUnderLoadAtABoundedRate) {
  SelectorOptions options = probing_options(0);
  options.trial_window_ms = 1000;
  options.probe_headroom = 1.15;
  Selector selector(options);
  ASSERT_TRUE(selector.set_budgets(latency_budget(10)).ok());
  // branch 1: median fits, tail predicted 10% over the budget
  const std::vector<BranchEstimate> e = {estimate(4, 6, 0.8), estimate(8, 11, 0.9)};
  SelectionContext loaded;
  loaded.contention = 1.5;
  SelectionContext idle;
  EXPECT_EQ(selector.decide(e, loaded, 0).branch, 0);
  EXPECT_EQ(selector.decide(e, idle, 200).branch, 0);  // no probe without a load
  Decision d = selector.decide(e, loaded, 300);
  EXPECT_EQ(d.branch, 1);  // probed
  // it was as slow as predicted: back at once, and no new probe before the interval doubles
  EXPECT_EQ(selector.decide(e, loaded, 350).branch, 0);
  for (double t = 400; t < 2300; t += 100) EXPECT_EQ(selector.decide(e, loaded, t).branch, 0);
  EXPECT_EQ(selector.decide(e, loaded, 2400).branch, 1);  // 300 + 1000 x 2
  // a probe that holds stays
  std::vector<BranchEstimate> fits = e;
  fits[1].latency_tail_ms = 9;
  EXPECT_EQ(selector.decide(fits, loaded, 2450).branch, 1);
  // far over the headroom: never probed
  expect_never_probed(options, e, 13);
}

TEST(ContentionModelTest, AtNoHeadroomABranchThatFitsWithoutEvidenceIsProbed) {
  const SelectorOptions options = probing_options(0);
  ASSERT_EQ(options.probe_headroom, 1.0);  // the default
  Selector selector(options);
  ASSERT_TRUE(selector.set_budgets(latency_budget(10)).ok());
  SelectionContext loaded;
  loaded.contention = 1.5;
  // branch 1 fits on the level's spread, not on observations of its own: no improvement switch
  // takes it (evidence_under_load), a probe does, and no sooner than the interval again
  std::vector<BranchEstimate> e = {estimate(4, 6, 0.8), estimate(8, 9, 0.9)};
  e[1].tail_own = false;
  std::vector<BranchEstimate> missed = e;
  missed[1].latency_tail_ms = 12;
  EXPECT_EQ(selector.decide(missed, loaded, 0).branch, 0);
  EXPECT_EQ(selector.decide(e, loaded, 100).branch, 1);       // probed
  EXPECT_EQ(selector.decide(e, loaded, 150).branch, 1);       // it still fits: it stays
  EXPECT_EQ(selector.decide(missed, loaded, 200).branch, 0);  // back
  for (double t = 300; t < 2100; t += 100) EXPECT_EQ(selector.decide(e, loaded, t).branch, 0);
  EXPECT_EQ(selector.decide(e, loaded, 2200).branch, 1);  // 200 + 1000 x 2
  // a branch predicted over the budget is not probed at no headroom
  expect_never_probed(options, e, 10.5);
}

TEST(ContentionModelTest, TheFirstProbeOfALoadWaitsForTheLoadToLast) {
  const SelectorOptions options = probing_options(3000);
  Selector selector(options);
  ASSERT_TRUE(selector.set_budgets(latency_budget(10)).ok());
  SelectionContext loaded;
  loaded.contention = 1.5;
  SelectionContext idle;
  std::vector<BranchEstimate> e = {estimate(4, 6, 0.8), estimate(8, 9, 0.9)};
  e[1].tail_own = false;
  EXPECT_EQ(selector.decide(e, idle, 0).branch, 1);  // at idle no evidence is asked for
  std::vector<BranchEstimate> loaded_e = e;
  loaded_e[1].latency_tail_ms = 12;
  EXPECT_EQ(selector.decide(loaded_e, loaded, 1000).branch, 0);  // the load begins: down
  // branch 1 fits again on paper, but without a tail of its own only a probe may take it
  for (double t = 1100; t < 4000; t += 100) EXPECT_EQ(selector.decide(e, loaded, t).branch, 0);
  EXPECT_EQ(selector.decide(e, loaded, 4000).branch, 1);  // 1000 + 3000
  // a load that ends and comes back starts the wait again
  Selector again(options);
  ASSERT_TRUE(again.set_budgets(latency_budget(10)).ok());
  EXPECT_EQ(again.decide(loaded_e, loaded, 0).branch, 0);
  EXPECT_EQ(again.decide(loaded_e, idle, 2500).branch, 0);
  for (double t = 2600; t < 5600; t += 100) EXPECT_EQ(again.decide(e, loaded, t).branch, 0);
  EXPECT_EQ(again.decide(e, loaded, 5600).branch, 1);  // 2600 + 3000
}

}  // namespace
}  // namespace adascale
