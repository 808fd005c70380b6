// The scenario replayer's oracle policy (its choice per segment, from synthetic calibration data),
// latency budgets relative to the bundle's idle latencies (parsing, resolution, one-line errors)
// and the seeded scenario generator (deterministic, parseable, bounded). No timing: nothing here
// runs a branch.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tools/scenario/calibration.h"
#include "tools/scenario/oracle.h"
#include "tools/scenario/relative_budget.h"
#include "tools/scenario/scenario.h"
#include "tools/scenario/scenario_generator.h"

namespace adascale {
namespace {

namespace sc = scenario;
using sc::ScenarioError;

BranchCosts branch(const std::string& name, double accuracy, double latency_ms,
                   double memory_bytes = 1000) {
  BranchCosts c;
  c.name = name;
  c.accuracy = accuracy;
  c.latency_median_ms = latency_ms;
  c.macs = latency_ms * 1e6;
  c.memory_bytes = memory_bytes;
  return c;
}

// big: most accurate and slowest; mid; small: fastest.
std::vector<BranchCosts> three_branches() {
  return {branch("big", 0.91, 0.20, 9000), branch("mid", 0.905, 0.10), branch("small", 0.80, 0.05)};
}

std::string parse_error(const std::string& text) {
  try {
    sc::parse_scenario(text, "s.ini");
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "";
}

std::string resolve_error(const std::string& text, const std::vector<BranchCosts>& costs) {
  sc::Scenario s = sc::parse_scenario(text, "s.ini");
  try {
    sc::resolve_relative_budgets(&s, costs);
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "";
}

// --- oracle ------------------------------------------------------------------------------------

TEST(ScenarioOracle, PicksTheMostAccurateBranchWithinTheTargetPerSegment) {
  const std::vector<BranchCosts> costs = three_branches();
  // [segment][branch] share of requests over budget
  const std::vector<std::vector<double>> share = {
      {0.00, 0.00, 0.00},  // idle: the most accurate
      {0.30, 0.01, 0.00},  // contended: mid is within 2%
      {0.90, 0.50, 0.02},  // heavy: only small (exactly at the target counts as within)
      {1.00, 0.60, 0.40},  // none within: the fewest violations
      {1.00, 0.40, 0.40},  // none within, a tie: the more accurate of the two
  };
  EXPECT_EQ(sc::oracle_branches(share, costs, 0.02), (std::vector<int>{0, 1, 2, 2, 1}));
  // a stricter target moves the second segment down
  EXPECT_EQ(sc::oracle_branches(share, costs, 0.0), (std::vector<int>{0, 2, 2, 2, 1}));
  EXPECT_TRUE(sc::oracle_branches({}, costs, 0.02).empty());
}

TEST(ScenarioOracle, SegmentSharesComeFromTheSegmentsLoadLevelAndBudgets) {
  const std::vector<BranchCosts> costs = three_branches();
  sc::Scenario s = sc::parse_scenario(
      "[scenario]\nduration_s = 10\n[budgets]\nlatency_ms = 10\n[timeline]\n"
      "2 = burners_start 2\n5 = budget latency_ms=5 memory_mode=absolute memory_mib=0.005\n"
      "7 = burners_stop 2\n",
      "s.ini");
  const std::vector<sc::Segment> segs = sc::segments(s);
  ASSERT_EQ(segs.size(), 4u);
  const std::vector<std::pair<int, double>> levels = {{0, 0.0}, {2, 0.0}};
  // [level][branch] measured request ms
  const std::vector<std::vector<std::vector<double>>> ms = {
      {{8, 9, 9, 9}, {4, 4, 4, 4}, {2, 2, 2, 2}},
      {{12, 12, 9, 9}, {6, 6, 6, 4}, {3, 3, 3, 3}},
  };
  const auto share = sc::segment_shares(segs, levels, ms, costs, 1e12);
  ASSERT_EQ(share.size(), 4u);
  EXPECT_EQ(share[0], (std::vector<double>{0, 0, 0}));     // idle, 10 ms
  EXPECT_EQ(share[1], (std::vector<double>{0.5, 0, 0}));   // 2 burners, 10 ms
  EXPECT_EQ(share[2], (std::vector<double>{1, 0.75, 0}));  // big over the memory limit
  EXPECT_EQ(share[3], (std::vector<double>{1, 0, 0}));     // idle again, memory limit kept
  EXPECT_EQ(sc::oracle_branches(share, costs, 0.02), (std::vector<int>{0, 1, 2, 1}));
}

TEST(ScenarioOracle, PolicyNameAndTargetKey) {
  EXPECT_EQ(sc::parse_policies("all").back(), sc::Policy::kOracle);
  EXPECT_EQ(sc::parse_policies("oracle,adaptive").front(), sc::Policy::kOracle);
  EXPECT_STREQ(sc::policy_name(sc::Policy::kOracle), "oracle");
  EXPECT_DOUBLE_EQ(sc::parse_scenario("[scenario]\nduration_s = 1\n", "s.ini").violation_target_pct,
                   2);
  EXPECT_DOUBLE_EQ(
      sc::parse_scenario("[scenario]\nduration_s = 1\nviolation_target_pct = 0.5\n", "s.ini")
          .violation_target_pct,
      0.5);
  EXPECT_EQ(parse_error("[scenario]\nduration_s = 1\nviolation_target_pct = 101\n"),
            "s.ini:3: key 'violation_target_pct': expected a number >= 0 and <= 100, got '101'");
}

// A device whose requests run in phases of 26 (every request, kept or not, counts): 1 ms, then
// 2 ms, then 1 ms again... as under two CPU burners on two cores, where a request either has a
// core to itself or shares one for about ten requests at a time.
struct PhasedDevice {
  int calls = 0;
  std::vector<int> branches;  // every request's branch, in order
  double run(int branch) {
    branches.push_back(branch);
    return (calls++ / 26) % 2 == 0 ? 1.0 : 2.0;
  }
};

double slow_share(const std::vector<double>& ms) {
  return static_cast<double>(std::count(ms.begin(), ms.end(), 2.0)) / ms.size();
}

TEST(ScenarioCalibration, InterleavedSlicesSeeEveryPhaseWhereBlocksSeeOne) {
  // calibration_s 0: the minimum of 10 kept requests decides how many there are, not the clock
  PhasedDevice blocks_device, slices_device;
  const auto blocks = sc::measure_level(4, 0, false, [&](int b) { return blocks_device.run(b); });
  const auto slices = sc::measure_level(4, 0, true, [&](int b) { return slices_device.run(b); });
  ASSERT_EQ(blocks.size(), 4u);
  ASSERT_EQ(slices.size(), 4u);
  std::vector<double> block_shares, slice_shares;
  for (size_t b = 0; b < 4; ++b) {
    EXPECT_EQ(blocks[b].size(), 10u);
    EXPECT_GE(slices[b].size(), 10u);
    block_shares.push_back(slow_share(blocks[b]));
    slice_shares.push_back(slow_share(slices[b]));
  }
  // one block a branch: each caught one phase, and the branches' shares are 0 or 1
  EXPECT_EQ(*std::min_element(block_shares.begin(), block_shares.end()), 0);
  EXPECT_EQ(*std::max_element(block_shares.begin(), block_shares.end()), 1);
  // slices: every branch saw both phases
  for (double share : slice_shares) {
    EXPECT_GT(share, 0.2);
    EXPECT_LT(share, 0.8);
  }
  // each branch warmed three times first; then slices of one switch request and three kept
  const std::vector<int>& order = slices_device.branches;
  ASSERT_GE(order.size(), 12u + 16u);
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(order[i], static_cast<int>(i / 3));
  for (size_t i = 12; i < 28; ++i) EXPECT_EQ(order[i], static_cast<int>((i - 12) / 4));
}

TEST(ScenarioCalibration, InterleavedIsTheDefaultAndAKey) {
  EXPECT_TRUE(sc::parse_scenario("[scenario]\nduration_s = 1\n", "s.ini").calibration_interleaved);
  EXPECT_FALSE(
      sc::parse_scenario("[scenario]\nduration_s = 1\ncalibration_interleaved = false\n", "s.ini")
          .calibration_interleaved);
  EXPECT_NE(parse_error("[scenario]\nduration_s = 1\ncalibration_interleaved = 2\n")
                .find("key 'calibration_interleaved'"),
            std::string::npos);
}

TEST(ScenarioCalibration, SharePlausibleIsTheBinomialTailAtTheTarget) {
  // at 2%: one of 12 over happens 21.5% of the time, two 2.3%; three of 60 11.9%, four 3.2%
  EXPECT_TRUE(sc::share_plausible(0, 12, 0.02));
  EXPECT_TRUE(sc::share_plausible(1, 12, 0.02));
  EXPECT_FALSE(sc::share_plausible(2, 12, 0.02));
  EXPECT_TRUE(sc::share_plausible(3, 60, 0.02));
  EXPECT_FALSE(sc::share_plausible(4, 60, 0.02));
  EXPECT_FALSE(sc::share_plausible(1, 12, 0));  // a target of 0 allows none
  EXPECT_TRUE(sc::share_plausible(5, 5, 1));
  EXPECT_FALSE(sc::share_plausible(6, 5, 0.5));  // more over than requests
}

TEST(ScenarioCalibration, RefinementCandidatesArePlausibleAndAtLeastAsAccurateAsThePick) {
  const std::vector<BranchCosts> costs = {branch("a", 0.92, 0.4), branch("b", 0.91, 0.3),
                                          branch("c", 0.90, 0.2), branch("d", 0.80, 0.1)};
  const std::vector<std::vector<double>> ms(4, std::vector<double>(12, 1.0));
  // tight budget: a has 2 of 12 over (implausible), b 1 of 12 (plausible, above the target),
  // c none (the pick), d none but less accurate than the pick
  const std::vector<double> tight = {2 / 12.0, 1 / 12.0, 0, 0};
  EXPECT_EQ(sc::refinement_candidates({tight}, ms, costs, 0.02, 60), (std::vector<size_t>{1, 2}));
  // a second segment of the level whose pick is a adds a
  const std::vector<double> loose = {0, 0, 0, 0};
  EXPECT_EQ(sc::refinement_candidates({tight, loose}, ms, costs, 0.02, 60),
            (std::vector<size_t>{0, 1, 2}));
  // refined enough already, or over the memory limit (share 1): none
  EXPECT_TRUE(sc::refinement_candidates({tight}, ms, costs, 0.02, 12).empty());
  EXPECT_EQ(sc::refinement_candidates({{1, 1, 0, 0}}, ms, costs, 0.02, 60),
            (std::vector<size_t>{2}));
}

// big misses 1.5 ms on every fifth of its requests; the others never do
struct SlowFifthDevice {
  int big_calls = 0;
  std::vector<int> branches;
  double run(int branch) {
    branches.push_back(branch);
    return branch == 0 && ++big_calls % 5 == 0 ? 2.0 : 1.0;
  }
};

TEST(ScenarioCalibration, RefinementFindsTheShareAFirstPassMissed) {
  const std::vector<BranchCosts> costs = three_branches();
  sc::Segment seg;
  seg.burners = 2;
  seg.budgets.latency_ms = 1.5;
  // a first pass that saw none of big's slow requests
  std::vector<std::vector<double>> ms(3, std::vector<double>(12, 1.0));
  EXPECT_EQ(
      sc::pick_branch(sc::segment_shares({seg}, {{2, 0.0}}, {ms}, costs, 1e12)[0], costs, 0.02), 0);
  SlowFifthDevice device;
  const sc::RunRequest run = [&](int b) { return device.run(b); };
  // big is refined and fails; then mid, the new pick, is refined; small is never run
  EXPECT_EQ(sc::refine_level(&ms, {seg}, costs, 1e12, 0.02, 60, run), 2u);
  EXPECT_GE(ms[0].size(), 60u);
  EXPECT_GE(ms[1].size(), 60u);
  EXPECT_EQ(ms[2].size(), 12u);
  const std::vector<double> share = sc::segment_shares({seg}, {{2, 0.0}}, {ms}, costs, 1e12)[0];
  EXPECT_GT(share[0], 0.1);
  EXPECT_EQ(share[1], 0);
  EXPECT_EQ(sc::pick_branch(share, costs, 0.02), 1);
  EXPECT_EQ(std::count(device.branches.begin(), device.branches.end(), 2), 0);
  // slices: one request not kept, then three kept
  EXPECT_EQ(device.branches.size(),
            ms[0].size() - 12 + ms[1].size() - 12 + (ms[0].size() - 12 + ms[1].size() - 12) / 3);
  // off: nothing runs
  std::vector<std::vector<double>> untouched(3, std::vector<double>(12, 1.0));
  EXPECT_EQ(sc::refine_level(&untouched, {seg}, costs, 1e12, 0.02, 0, run), 0u);
  EXPECT_EQ(untouched[0].size(), 12u);
}

TEST(ScenarioCalibration, RefineRequestsIsAKey) {
  EXPECT_EQ(sc::parse_scenario("[scenario]\nduration_s = 1\n", "s.ini").calibration_refine_requests,
            60u);
  EXPECT_EQ(
      sc::parse_scenario("[scenario]\nduration_s = 1\ncalibration_refine_requests = 0\n", "s.ini")
          .calibration_refine_requests,
      0u);
  EXPECT_NE(parse_error("[scenario]\nduration_s = 1\ncalibration_refine_requests = 10001\n")
                .find("key 'calibration_refine_requests'"),
            std::string::npos);
}

// --- relative budgets --------------------------------------------------------------------------

TEST(ScenarioRelativeBudget, ResolvesAgainstTheBundlesIdleLatencies) {
  const std::vector<BranchCosts> costs = three_branches();
  sc::Scenario s = sc::parse_scenario(
      "[scenario]\nduration_s = 10\nframe_images = 100\n[budgets]\n"
      "latency_ms = 1.5 x fastest-accurate\n[timeline]\n"
      "2 = budget latency_ms=2 x fastest energy_mj=5\n4 = budget latency_ms=0.5 x largest\n"
      "6 = budget latency_ms=12.5\n",
      "s.ini");
  EXPECT_TRUE(s.latency_relative);
  EXPECT_THROW(sc::check_resolved(s), ScenarioError);
  const std::vector<std::string> lines = sc::resolve_relative_budgets(&s, costs);
  sc::check_resolved(s);
  // fastest-accurate: mid (within 1 pt of big, faster); fastest: small; largest: big
  EXPECT_DOUBLE_EQ(s.budgets.latency_ms, 1.5 * 0.10 * 100);
  EXPECT_DOUBLE_EQ(*s.events[0].budget.latency_ms, 2 * 0.05 * 100);
  EXPECT_DOUBLE_EQ(*s.events[0].budget.energy_mj, 5);
  EXPECT_DOUBLE_EQ(*s.events[1].budget.latency_ms, 0.5 * 0.20 * 100);
  EXPECT_DOUBLE_EQ(*s.events[2].budget.latency_ms, 12.5);  // absolute budgets still work
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0],
            "budget 1.5 x fastest-accurate = 15.00 ms per request (mid: 0.1 ms per image x 100 "
            "images)");
  EXPECT_EQ(lines[1].rfind("t=2 s: budget 2 x fastest = 10.00 ms", 0), 0u) << lines[1];
  EXPECT_EQ(sc::describe_latency_budget(s), "1.5 x fastest-accurate = 15.00");
  EXPECT_DOUBLE_EQ(sc::segments(s)[2].budgets.latency_ms, 10);
}

TEST(ScenarioRelativeBudget, BadValuesAreOneLineErrorsNamingTheKey) {
  const std::string head = "[scenario]\nduration_s = 10\n[budgets]\n";
  EXPECT_EQ(parse_error(head + "latency_ms = 1.4 x quickest\n"),
            "s.ini:4: key 'latency_ms': unknown reference 'quickest' (fastest, largest, "
            "fastest-accurate), got '1.4 x quickest'");
  for (const char* factor : {"0", "-1", "nan", "inf", "abc", "2000"})
    EXPECT_NE(parse_error(head + "latency_ms = " + factor + " x fastest\n")
                  .find("s.ini:4: key 'latency_ms': expected a factor > 0"),
              std::string::npos)
        << factor;
  EXPECT_NE(parse_error(head + "latency_ms = 1.4 x\n").find("expected FACTOR x REFERENCE"),
            std::string::npos);
  EXPECT_NE(parse_error(head + "latency_ms = 1.4 x fastest largest\n")
                .find("s.ini:4: key 'latency_ms': expected FACTOR x REFERENCE"),
            std::string::npos);
  // in an event, too
  EXPECT_EQ(parse_error(head + "[timeline]\n1 = budget latency_ms=0 x largest\n"),
            "s.ini:5: key 'latency_ms': expected a factor > 0 and <= 1000 before 'x', got '0 x "
            "largest'");
  EXPECT_NE(parse_error(head + "[timeline]\n1 = budget latency_ms=1 x\n")
                .find("budget arguments are KEY=VALUE, got 'x'"),
            std::string::npos);

  // The bundle lacks what the reference needs: named with the file, the line and the key.
  std::vector<BranchCosts> costs = three_branches();
  costs[1].latency_median_ms.reset();
  EXPECT_EQ(resolve_error(head + "latency_ms = 2 x fastest\n", costs),
            "s.ini:4: key 'latency_ms': 2 x fastest: the bundle records no idle latency "
            "(latency_ms.median) for branch 'mid'");
  costs = three_branches();
  costs[2].accuracy.reset();
  EXPECT_EQ(resolve_error(head + "[timeline]\n3 = budget latency_ms=2 x largest\n", costs),
            "s.ini:5: key 'latency_ms': 2 x largest: the bundle records no accuracy for branch "
            "'small'");
  EXPECT_EQ(resolve_error(head + "latency_ms = 2 x fastest\n", costs), "");  // needs no accuracy
  EXPECT_NE(resolve_error(head + "latency_ms = 2 x fastest\n", {}).find("has no branches"),
            std::string::npos);
  // a factor that resolves below the smallest budget
  EXPECT_NE(resolve_error(head + "latency_ms = 0.0001 x fastest\n", three_branches())
                .find("s.ini:4: key 'latency_ms': resolves to"),
            std::string::npos);
}

// --- generator ---------------------------------------------------------------------------------

TEST(ScenarioGenerator, UniformBelowIsTheSameEverywhere) {
  std::mt19937 rng(42);
  // mt19937's output is fixed by the standard; the mapping is integer arithmetic, so these
  // values hold on every standard library
  std::vector<uint32_t> draws;
  for (int i = 0; i < 6; ++i) draws.push_back(sc::uniform_below(rng, 10));
  std::mt19937 again(42);
  for (uint32_t d : draws) EXPECT_EQ(d, again() % 10);  // no rejection at these draws
  std::mt19937 one(1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sc::uniform_below(one, 1), 0u);
}

TEST(ScenarioGenerator, SameSeedSameBytesDifferentSeedDifferentFile) {
  sc::GeneratorOptions o;
  o.cores = 2;
  o.frame_images = 256;
  const std::string a = sc::generate_scenario(1, o);
  EXPECT_EQ(a, sc::generate_scenario(1, o));
  EXPECT_NE(a, sc::generate_scenario(2, o));
  // the same file on every standard library (mt19937 and integer mapping only)
  EXPECT_NE(a.find("duration_s = 27\n"), std::string::npos) << a;
  EXPECT_NE(a.find("latency_ms = 2.25 x fastest-accurate\n"), std::string::npos) << a;
  EXPECT_NE(a.find("4 = burners_start 1\n"), std::string::npos) << a;
}

TEST(ScenarioGenerator, OutputParsesAndStaysWithinItsBounds) {
  const std::vector<BranchCosts> costs = three_branches();
  std::set<std::string> files;
  for (int cores : {1, 2, 8})
    for (uint32_t seed = 0; seed < 40; ++seed) {
      sc::GeneratorOptions o;
      o.cores = cores;
      o.frame_images = 64;
      const std::string text = sc::generate_scenario(seed, o);
      files.insert(text);
      sc::Scenario s = sc::parse_scenario(text, "gen.ini");
      sc::resolve_relative_budgets(&s, costs);
      sc::check_resolved(s);
      EXPECT_EQ(s.name, "random-" + std::to_string(seed));
      EXPECT_EQ(s.frame_images, 64);
      // the length the generator wrote into the scenario, not a timing
      const double scripted_length = s.duration_s;
      EXPECT_GE(scripted_length, sc::kGeneratedMinDurationS);
      EXPECT_LE(scripted_length, sc::kGeneratedMaxDurationS);
      EXPECT_FALSE(s.events.empty()) << text;
      EXPECT_LE(s.events.size(), 100u);
      double tightest = s.budgets.latency_ms;
      for (const sc::Segment& seg : sc::segments(s)) {
        EXPECT_LE(seg.burners, cores + 1);
        EXPECT_LE(seg.balloon_mib, sc::kGeneratedMaxBalloonMib);
        EXPECT_GT(seg.budgets.latency_ms, 0);
        tightest = std::min(tightest, seg.budgets.latency_ms);
      }
      // idle at the end: every burst is over before the timeline ends
      const sc::Segment last = sc::segments(s).back();
      EXPECT_EQ(last.burners, 0);
      EXPECT_EQ(last.balloon_mib, 0);
      EXPECT_DOUBLE_EQ(last.budgets.latency_ms, s.budgets.latency_ms);
      EXPECT_GE(last.end_s - last.begin_s, 2);
      EXPECT_GE(tightest, 1.1 * 0.10 * 64 - 1e-9);  // at least 1.10 x fastest-accurate
    }
  EXPECT_EQ(files.size(), 120u);
}

TEST(ScenarioGenerator, RequestsSizedForTheBundle) {
  EXPECT_EQ(sc::suggested_frame_images(three_branches()), 128);  // 0.1 ms x 128 >= 10 ms
  std::vector<BranchCosts> costs = three_branches();
  costs[0].latency_median_ms.reset();
  EXPECT_EQ(sc::suggested_frame_images(costs), 128);  // no latencies: the default
  EXPECT_EQ(sc::suggested_frame_images({branch("slow", 0.9, 50)}), 1);
  EXPECT_EQ(sc::suggested_frame_images({branch("tiny", 0.9, 1e-6)}), 4096);
}

}  // namespace
}  // namespace adascale
