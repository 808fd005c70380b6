// Selector: budgets, feasibility, objective, deterministic ties, hysteresis, dwell, nothing fits.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "runtime/adapt/selector.h"
#include "runtime_adapt_estimates.h"

namespace adascale {
namespace {

using testing::estimate;
using testing::latency_budget;

SelectorOptions no_dwell() {
  SelectorOptions o;
  o.min_dwell_ms = 0;
  return o;
}

// dwell only: no switch or entry margins to reason about
SelectorOptions dwell_only(double min_dwell_ms) {
  SelectorOptions o;
  o.min_dwell_ms = min_dwell_ms;
  o.switch_margin = 0;
  o.entry_margin = 0;
  return o;
}

TEST(SelectorTest, RejectsNegativeNanAndImpossibleBudgets) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(validate_budgets(Budgets{}).ok());
  Budgets b;
  b.latency_ms = -1;
  EXPECT_EQ(validate_budgets(b).code, ErrorCode::kInvalidArgument);
  EXPECT_NE(validate_budgets(b).message.find("latency"), std::string::npos);
  b.latency_ms = nan;
  EXPECT_FALSE(validate_budgets(b).ok());
  b.latency_ms = 0;  // nothing runs in zero time
  EXPECT_FALSE(validate_budgets(b).ok());
  b = Budgets{};
  b.energy_mj = nan;
  EXPECT_NE(validate_budgets(b).message.find("energy"), std::string::npos);
  b.energy_mj = -3;
  EXPECT_FALSE(validate_budgets(b).ok());
  b = Budgets{};
  b.memory_mode = MemoryBudgetMode::kAbsolute;
  b.memory_bytes = 0;
  EXPECT_NE(validate_budgets(b).message.find("memory"), std::string::npos);
  b.memory_bytes = -5;
  EXPECT_FALSE(validate_budgets(b).ok());
  b.memory_bytes = nan;
  EXPECT_FALSE(validate_budgets(b).ok());
  b.memory_mode = MemoryBudgetMode::kAvailableMinusMargin;
  b.memory_bytes = 0;  // a zero margin is fine
  EXPECT_TRUE(validate_budgets(b).ok());
  b = Budgets{};
  b.energy_weight = -1;
  EXPECT_FALSE(validate_budgets(b).ok());
  b = Budgets{};
  b.battery_aware = true;
  b.battery_low_pct = 120;
  EXPECT_FALSE(validate_budgets(b).ok());

  Selector selector;
  ASSERT_TRUE(selector.set_budgets(latency_budget(5)).ok());
  EXPECT_FALSE(selector.set_budgets(latency_budget(-1)).ok());
  EXPECT_EQ(selector.budgets().latency_ms, 5);  // a rejected budget changes nothing
}

TEST(SelectorTest, PicksTheMostAccurateFeasibleBranch) {
  Selector selector(no_dwell());
  ASSERT_TRUE(selector.set_budgets(latency_budget(3)).ok());
  const std::vector<BranchEstimate> e = {estimate(1, 0.70), estimate(2.5, 0.80), estimate(6, 0.90)};
  const Decision d = selector.decide(e, {}, 0);
  EXPECT_EQ(d.branch, 1);
  EXPECT_TRUE(d.switched);
  EXPECT_EQ(d.reason, SwitchReason::kInitial);
  EXPECT_FALSE(d.nothing_fits);
  EXPECT_EQ(selector.current(), 1);
}

TEST(SelectorTest, MemoryBudgetsAbsoluteAndAvailableMinusMargin) {
  Selector selector(no_dwell());
  Budgets b;
  b.memory_mode = MemoryBudgetMode::kAbsolute;
  b.memory_bytes = 150;
  ASSERT_TRUE(selector.set_budgets(b).ok());
  const std::vector<BranchEstimate> e = {estimate(1, 0.7, 100), estimate(1, 0.9, 200)};
  EXPECT_EQ(selector.decide(e, {}, 0).branch, 0);

  Selector relative(no_dwell());
  b.memory_mode = MemoryBudgetMode::kAvailableMinusMargin;
  b.memory_bytes = 50;  // margin
  ASSERT_TRUE(relative.set_budgets(b).ok());
  SelectionContext roomy;
  roomy.available_memory_bytes = 1000;
  EXPECT_EQ(relative.decide(e, roomy, 0).branch, 1);
  SelectionContext tight;
  tight.available_memory_bytes = 200;  // 150 usable
  const Decision d = relative.decide(e, tight, 1);
  EXPECT_EQ(d.branch, 0);
  EXPECT_EQ(d.reason, SwitchReason::kInfeasible);
}

TEST(SelectorTest, EnergyBudgetAndWeightedObjective) {
  Selector selector(no_dwell());
  Budgets b;
  b.energy_mj = 2;
  ASSERT_TRUE(selector.set_budgets(b).ok());
  const std::vector<BranchEstimate> e = {estimate(1, 0.70, 100, 1.0), estimate(1, 0.80, 100, 1.8),
                                         estimate(1, 0.90, 100, 5.0)};
  EXPECT_EQ(selector.decide(e, {}, 0).branch, 1);

  Selector weighted(no_dwell());
  Budgets w;
  w.energy_weight = 0.2;  // 0.70-0.2 = 0.50, 0.80-0.36 = 0.44, 0.90-1.0 = -0.1
  ASSERT_TRUE(weighted.set_budgets(w).ok());
  EXPECT_EQ(weighted.decide(e, {}, 0).branch, 0);
}

TEST(SelectorTest, BatteryAwarePolicyTradesAccuracyForEnergyAsTheBatteryDrains) {
  const std::vector<BranchEstimate> e = {estimate(1, 0.70, 100, 1.0), estimate(1, 0.80, 100, 1.5),
                                         estimate(1, 0.90, 100, 3.0)};
  Budgets b;
  b.battery_aware = true;
  b.battery_energy_weight = 0.2;
  b.battery_low_pct = 15;
  auto pick = [&](double capacity, bool discharging) {
    Selector selector(no_dwell());
    EXPECT_TRUE(selector.set_budgets(b).ok());
    SelectionContext c;
    c.battery_capacity_pct = capacity;
    c.battery_discharging = discharging;
    return selector.decide(e, c, 0).branch;
  };
  EXPECT_EQ(pick(90, false), 2);  // on mains: accuracy
  EXPECT_EQ(pick(90, true), 2);   // weight 0.02: 0.90-0.06 still wins
  EXPECT_EQ(pick(40, true), 1);   // weight 0.12: 0.58, 0.62, 0.54
  EXPECT_EQ(pick(10, true), 0);   // low: energy alone
}

TEST(SelectorTest, NothingFitsPicksTheCheapestAndFlagsIt) {
  Selector selector(no_dwell());
  ASSERT_TRUE(selector.set_budgets(latency_budget(0.5)).ok());
  const std::vector<BranchEstimate> e = {estimate(2, 0.9), estimate(1, 0.7), estimate(3, 0.95)};
  const Decision d = selector.decide(e, {}, 0);
  EXPECT_EQ(d.branch, 1);
  EXPECT_TRUE(d.nothing_fits);
  EXPECT_EQ(d.reason, SwitchReason::kNothingFits);

  // A branch whose latency is unknown never counts as fitting a latency budget.
  std::vector<BranchEstimate> unknown = {estimate(1, 0.9)};
  unknown[0].latency_known = false;
  Selector other(no_dwell());
  ASSERT_TRUE(other.set_budgets(latency_budget(5)).ok());
  EXPECT_TRUE(other.decide(unknown, {}, 0).nothing_fits);
}

TEST(SelectorTest, TiesBreakDeterministically) {
  // Equal accuracy: the faster branch; equal accuracy and latency: the lower index.
  const std::vector<BranchEstimate> e = {estimate(2, 0.8), estimate(1, 0.8), estimate(1, 0.8)};
  for (int repeat = 0; repeat < 3; ++repeat) {
    Selector selector(no_dwell());
    EXPECT_EQ(selector.decide(e, {}, 0).branch, 1);
  }
  const std::vector<BranchEstimate> same = {estimate(1, 0.8), estimate(1, 0.8)};
  Selector selector(no_dwell());
  EXPECT_EQ(selector.decide(same, {}, 0).branch, 0);
  // Nothing fits and equal violations: the faster, then the lower index.
  Selector tight(no_dwell());
  ASSERT_TRUE(tight.set_budgets(latency_budget(0.1)).ok());
  Budgets mem;
  mem.memory_mode = MemoryBudgetMode::kAbsolute;
  mem.memory_bytes = 10;
  ASSERT_TRUE(tight.set_budgets(mem).ok());
  const std::vector<BranchEstimate> heavy = {estimate(3, 0.8, 100), estimate(2, 0.8, 100)};
  EXPECT_EQ(tight.decide(heavy, {}, 0).branch, 1);
}

TEST(SelectorTest, NearlyEqualObjectivesGoToTheFasterBranch) {
  // 0.06 pt of held-out accuracy does not pay for a branch 1.5x slower ...
  const std::vector<BranchEstimate> e = {estimate(6, 0.9037), estimate(4, 0.9031),
                                         estimate(3, 0.8990)};
  Selector selector(no_dwell());
  ASSERT_TRUE(selector.set_budgets(latency_budget(10)).ok());
  EXPECT_EQ(selector.decide(e, {}, 0).branch, 1);
  // ... but 0.41 pt does (the tolerance is 0.2 pt), and with no tolerance every hundredth counts
  std::vector<BranchEstimate> f = e;
  f[1].accuracy = 0.8996;
  Selector second(no_dwell());
  EXPECT_EQ(second.decide(f, {}, 0).branch, 0);
  SelectorOptions exact = no_dwell();
  exact.objective_tolerance = 0;
  Selector third(exact);
  EXPECT_EQ(third.decide(e, {}, 0).branch, 0);

  // the improvement margin is judged on the top objective, the switch goes to its faster
  // near-equal: 0.9055 beats the current 0.900 by more than the 0.005 margin, 0.9035 is the target
  Selector climbing(no_dwell());
  ASSERT_TRUE(climbing.set_budgets(latency_budget(10)).ok());
  std::vector<BranchEstimate> g = {estimate(1, 0.900), estimate(20, 0.9035), estimate(30, 0.9055)};
  EXPECT_EQ(climbing.decide(g, {}, 0).branch, 0);
  g[1].latency_ms = 2;
  g[2].latency_ms = 3;
  const Decision up = climbing.decide(g, {}, 1);
  EXPECT_EQ(up.branch, 1);
  EXPECT_EQ(up.reason, SwitchReason::kBetter);
  EXPECT_EQ(climbing.decide(g, {}, 2).branch, 1);  // and stays: it is within tolerance of the top

  // equal latencies within the tolerance go to the higher objective, not the lower index
  const std::vector<BranchEstimate> same_speed = {estimate(2, 0.9000), estimate(2, 0.9015)};
  Selector fourth(no_dwell());
  EXPECT_EQ(fourth.decide(same_speed, {}, 0).branch, 1);

  // the tolerance is in accuracy units: an energy-only objective (low battery) takes no tolerance
  Budgets battery;
  battery.battery_aware = true;
  battery.battery_low_pct = 15;
  Selector low(no_dwell());
  ASSERT_TRUE(low.set_budgets(battery).ok());
  SelectionContext drained;
  drained.battery_capacity_pct = 5;
  drained.battery_discharging = true;
  const std::vector<BranchEstimate> energy = {estimate(2, 0.90, 100, 0.0018),
                                              estimate(3, 0.89, 100, 0.0001)};
  EXPECT_EQ(low.decide(energy, drained, 0).branch, 1);
}

TEST(SelectorTest, HysteresisNeedsAMarginToSwitch) {
  SelectorOptions options = no_dwell();
  options.switch_margin = 0.02;
  options.entry_margin = 0.1;
  Selector selector(options);
  ASSERT_TRUE(selector.set_budgets(latency_budget(10)).ok());
  std::vector<BranchEstimate> e = {estimate(1, 0.80), estimate(12, 0.95)};
  EXPECT_EQ(selector.decide(e, {}, 0).branch, 0);

  // Branch 1 becomes feasible but only 0.01 better: stay.
  e[1] = estimate(5, 0.81);
  Decision d = selector.decide(e, {}, 1);
  EXPECT_EQ(d.branch, 0);
  EXPECT_FALSE(d.switched);
  EXPECT_EQ(d.reason, SwitchReason::kStay);
  // 0.03 better: switch.
  e[1] = estimate(5, 0.83);
  d = selector.decide(e, {}, 2);
  EXPECT_EQ(d.branch, 1);
  EXPECT_EQ(d.reason, SwitchReason::kBetter);
  EXPECT_EQ(d.previous, 0);

  // The current branch stays up to the budget itself ...
  e[1].latency_ms = 9.9;
  EXPECT_EQ(selector.decide(e, {}, 3).branch, 1);
  // ... and leaves once it exceeds it.
  e[1].latency_ms = 10.5;
  d = selector.decide(e, {}, 4);
  EXPECT_EQ(d.branch, 0);
  EXPECT_EQ(d.reason, SwitchReason::kInfeasible);
  // A newcomer must fit within (1 - entry_margin) of the budget: 9.5 > 9.0 keeps it out.
  e[1].latency_ms = 9.5;
  EXPECT_EQ(selector.decide(e, {}, 5).branch, 0);
  e[1].latency_ms = 8.5;
  EXPECT_EQ(selector.decide(e, {}, 6).branch, 1);
}

TEST(SelectorTest, MinimumDwellDelaysImprovementsButNotInfeasibility) {
  SelectorOptions options = dwell_only(1000);
  Selector selector(options);
  ASSERT_TRUE(selector.set_budgets(latency_budget(10)).ok());
  std::vector<BranchEstimate> e = {estimate(1, 0.7), estimate(20, 0.9)};
  EXPECT_EQ(selector.decide(e, {}, 0).branch, 0);
  e[1].latency_ms = 5;                               // now feasible and better
  EXPECT_EQ(selector.decide(e, {}, 500).branch, 0);  // too soon
  Decision d = selector.decide(e, {}, 1000);
  EXPECT_EQ(d.branch, 1);
  EXPECT_EQ(d.reason, SwitchReason::kBetter);
  // Infeasibility switches at once, dwell or not.
  e[1].latency_ms = 15;
  d = selector.decide(e, {}, 1001);
  EXPECT_EQ(d.branch, 0);
  EXPECT_EQ(d.reason, SwitchReason::kInfeasible);
}

TEST(SelectorTest, UnderLoadEachImprovementDoublesTheNextDwell) {
  SelectorOptions options = dwell_only(100);
  options.context_change = 0;
  options.trial_window_ms = 0;
  Selector selector(options);
  ASSERT_TRUE(selector.set_budgets(latency_budget(10)).ok());
  SelectionContext loaded;
  loaded.contention = 2;
  std::vector<BranchEstimate> e = {estimate(1, 0.6), estimate(20, 0.7), estimate(20, 0.8),
                                   estimate(20, 0.9)};
  EXPECT_EQ(selector.decide(e, loaded, 0).branch, 0);
  e[1].latency_ms = 5;
  EXPECT_EQ(selector.decide(e, loaded, 100).branch, 1);  // the first step up: min_dwell_ms
  e[2].latency_ms = 6;
  EXPECT_EQ(selector.decide(e, loaded, 250).branch, 1);  // 150 ms: the dwell is 200 now
  EXPECT_EQ(selector.decide(e, loaded, 300).branch, 2);
  e[3].latency_ms = 7;
  EXPECT_EQ(selector.decide(e, loaded, 650).branch, 2);  // 350 ms: 400 now
  EXPECT_EQ(selector.decide(e, loaded, 700).branch, 3);
  // down (infeasible) does not reset the count; the next step up waits the longest dwell
  e[3].latency_ms = 20;
  EXPECT_EQ(selector.decide(e, loaded, 710).branch, 2);
  e[3].latency_ms = 7;
  EXPECT_EQ(selector.decide(e, loaded, 1100).branch, 2);  // 390 ms, capped at 100 x 2^2
  EXPECT_EQ(selector.decide(e, loaded, 1110).branch, 3);
  // new budgets are a new context: the dwell starts again at min_dwell_ms
  ASSERT_TRUE(selector.set_budgets(latency_budget(6.5)).ok());
  EXPECT_EQ(selector.decide(e, loaded, 1120).branch, 2);  // infeasible now
  ASSERT_TRUE(selector.set_budgets(latency_budget(10)).ok());
  EXPECT_EQ(selector.decide(e, loaded, 1220).branch, 3);

  // at idle, and without doublings, every step up waits min_dwell_ms only
  Selector idle(options);
  ASSERT_TRUE(idle.set_budgets(latency_budget(10)).ok());
  e = {estimate(1, 0.6), estimate(5, 0.7), estimate(20, 0.8), estimate(20, 0.9)};
  EXPECT_EQ(idle.decide(e, {}, 0).branch, 1);
  e[2].latency_ms = 6;
  EXPECT_EQ(idle.decide(e, {}, 100).branch, 2);
  e[3].latency_ms = 7;
  EXPECT_EQ(idle.decide(e, {}, 200).branch, 3);
  options.dwell_doublings = 0;
  Selector flat(options);
  ASSERT_TRUE(flat.set_budgets(latency_budget(10)).ok());
  e = {estimate(1, 0.6), estimate(5, 0.7), estimate(20, 0.8), estimate(20, 0.9)};
  EXPECT_EQ(flat.decide(e, loaded, 0).branch, 1);
  e[2].latency_ms = 6;
  EXPECT_EQ(flat.decide(e, loaded, 100).branch, 2);
  e[3].latency_ms = 7;
  EXPECT_EQ(flat.decide(e, loaded, 200).branch, 3);
}

TEST(SelectorTest, UnderLoadAStepUpGoesOnlyToABranchWithATailOfItsOwn) {
  SelectorOptions options = dwell_only(100);
  options.context_change = 0;
  options.trial_window_ms = 0;
  options.probe_headroom = 0;  // no probe: what an improvement switch may do alone
  SelectionContext loaded;
  loaded.contention = 2;
  auto run = [&](bool evidence, const SelectionContext& context) {
    options.evidence_under_load = evidence;
    Selector selector(options);
    EXPECT_TRUE(selector.set_budgets(latency_budget(10)).ok());
    std::vector<BranchEstimate> e = {estimate(1, 0.6), estimate(20, 0.9)};
    EXPECT_EQ(selector.decide(e, context, 0).branch, 0);
    e[1].latency_ms = 5;  // fits now, on the level's spread alone
    e[1].tail_own = false;
    const int unproven = selector.decide(e, context, 200).branch;
    e[1].tail_own = true;
    const int proven = selector.decide(e, context, 400).branch;
    return std::make_pair(unproven, proven);
  };
  EXPECT_EQ(run(true, loaded), std::make_pair(0, 1));
  EXPECT_EQ(run(false, loaded), std::make_pair(1, 1));
  EXPECT_EQ(run(true, {}), std::make_pair(1, 1));  // at idle no evidence is asked for
  // a step down never waits for evidence: the branch it leaves no longer fits
  options.evidence_under_load = true;
  Selector selector(options);
  ASSERT_TRUE(selector.set_budgets(latency_budget(10)).ok());
  std::vector<BranchEstimate> e = {estimate(1, 0.6), estimate(5, 0.9)};
  EXPECT_EQ(selector.decide(e, loaded, 0).branch, 1);
  e[0].tail_own = false;
  e[1].latency_ms = 20;
  EXPECT_EQ(selector.decide(e, loaded, 10).branch, 0);
}

TEST(SelectorTest, AContextChangeWaivesTheDwellOnceItHolds) {
  SelectorOptions options = dwell_only(1000);
  options.context_change = 1.4;
  options.context_settle_ms = 100;
  Selector selector(options);
  ASSERT_TRUE(selector.set_budgets(latency_budget(10)).ok());
  SelectionContext loaded, idle, slightly_less;
  loaded.contention = 2.5;
  idle.contention = 1.0;
  slightly_less.contention = 2.0;  // 1.25x below: noise, not a change
  // under load only the small branch fits
  std::vector<BranchEstimate> e = {estimate(1, 0.7), estimate(20, 0.9)};
  EXPECT_EQ(selector.decide(e, loaded, 0).branch, 0);
  e[1].latency_ms = 5;  // the load ends: the large branch fits again
  EXPECT_EQ(selector.decide(e, slightly_less, 100).branch, 0);  // within the dwell, no change
  EXPECT_EQ(selector.decide(e, slightly_less, 300).branch, 0);
  EXPECT_EQ(selector.decide(e, idle, 400).branch, 0);    // changed, but not for long enough
  EXPECT_EQ(selector.decide(e, loaded, 450).branch, 0);  // back: the change did not hold
  EXPECT_EQ(selector.decide(e, idle, 500).branch, 0);
  EXPECT_EQ(selector.decide(e, idle, 550).branch, 0);
  const Decision d = selector.decide(e, idle, 600);  // held 100 ms: the dwell is waived
  EXPECT_EQ(d.branch, 1);
  EXPECT_EQ(d.reason, SwitchReason::kBetter);

  // without the option the dwell holds for its full length
  options.context_change = 0;
  Selector plain(options);
  ASSERT_TRUE(plain.set_budgets(latency_budget(10)).ok());
  e[1].latency_ms = 20;
  EXPECT_EQ(plain.decide(e, loaded, 0).branch, 0);
  e[1].latency_ms = 5;
  EXPECT_EQ(plain.decide(e, idle, 500).branch, 0);
  EXPECT_EQ(plain.decide(e, idle, 999).branch, 0);
  EXPECT_EQ(plain.decide(e, idle, 1000).branch, 1);
}

TEST(SelectorTest, BranchesThatFailRightAfterAnImprovementBackOff) {
  SelectorOptions options = dwell_only(100);
  options.trial_window_ms = 1000;
  Selector selector(options);
  ASSERT_TRUE(selector.set_budgets(latency_budget(10)).ok());
  std::vector<BranchEstimate> e = {estimate(5, 0.7), estimate(9, 0.9)};
  const std::vector<BranchEstimate> looks_fine = e;
  std::vector<BranchEstimate> too_slow = e;
  too_slow[1].latency_ms = 12;  // what branch 1 really does once it runs
  EXPECT_EQ(selector.decide(too_slow, {}, 0).branch, 0);
  // Tried at 200 ms, found too slow at 250: blocked for 100 x 2 ms.
  EXPECT_EQ(selector.decide(looks_fine, {}, 200).reason, SwitchReason::kBetter);
  EXPECT_EQ(selector.decide(too_slow, {}, 250).reason, SwitchReason::kInfeasible);
  EXPECT_TRUE(selector.blocked(1, 400));
  EXPECT_EQ(selector.decide(looks_fine, {}, 400).branch, 0);
  EXPECT_FALSE(selector.blocked(1, 450));
  EXPECT_EQ(selector.decide(looks_fine, {}, 450).branch, 1);
  // Failing again doubles the wait: 100 x 4 ms.
  EXPECT_EQ(selector.decide(too_slow, {}, 500).branch, 0);
  EXPECT_TRUE(selector.blocked(1, 850));
  EXPECT_EQ(selector.decide(looks_fine, {}, 850).branch, 0);
  EXPECT_EQ(selector.decide(looks_fine, {}, 900).branch, 1);
  // Held past the window: leaving it later for infeasibility is no failed trial.
  EXPECT_EQ(selector.decide(looks_fine, {}, 2000).branch, 1);
  EXPECT_EQ(selector.decide(too_slow, {}, 2100).branch, 0);
  EXPECT_FALSE(selector.blocked(1, 2100));
  // Infeasibility moves are never held back by a block.
  options.trial_window_ms = 0;
  Selector plain(options);
  ASSERT_TRUE(plain.set_budgets(latency_budget(10)).ok());
  EXPECT_EQ(plain.decide(too_slow, {}, 0).branch, 0);
  EXPECT_EQ(plain.decide(looks_fine, {}, 200).branch, 1);
  EXPECT_EQ(plain.decide(too_slow, {}, 250).branch, 0);
  EXPECT_FALSE(plain.blocked(1, 260));  // disabled
}

TEST(SelectorTest, TailLatencyJudgesTheBudgetOnTheTailEstimate) {
  SelectorOptions options = no_dwell();
  options.entry_margin = 0;
  std::vector<BranchEstimate> e = {estimate(2, 0.7), estimate(8, 0.9)};
  e[0].latency_tail_ms = 3;
  e[1].latency_tail_ms = 12;  // typical request fits 10 ms, a slow one does not
  Selector median(no_dwell());
  ASSERT_TRUE(median.set_budgets(latency_budget(10)).ok());
  EXPECT_EQ(median.decide(e, {}, 0).branch, 1);
  options.tail_latency = true;
  Selector tail(options);
  ASSERT_TRUE(tail.set_budgets(latency_budget(10)).ok());
  EXPECT_EQ(tail.decide(e, {}, 0).branch, 0);
  // Nothing fits at the tail: the least violating branch by its tail.
  e[0].latency_tail_ms = 11;
  ASSERT_TRUE(tail.set_budgets(latency_budget(10)).ok());
  const Decision d = tail.decide(e, {}, 1);
  EXPECT_TRUE(d.nothing_fits);
  EXPECT_EQ(d.branch, 0);
}

}  // namespace
}  // namespace adascale
