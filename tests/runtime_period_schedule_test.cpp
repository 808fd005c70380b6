// PeriodSchedule: the loop's jittered period, and why it is jittered: two loops that start
// together stop sampling at the same instants.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "runtime/adapt/period_schedule.h"

namespace adascale {
namespace {

std::vector<double> draws(PeriodSchedule& schedule, int n) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(schedule.next_ms());
  return out;
}

// the instants at which a loop with this schedule samples, starting at 0
std::vector<double> sample_times(PeriodSchedule& schedule, int n) {
  std::vector<double> out{0.0};
  for (int i = 1; i < n; ++i) out.push_back(out.back() + schedule.next_ms());
  return out;
}

// share of a's instants with one of b's within window_ms (both sorted)
double coincident_share(const std::vector<double>& a, const std::vector<double>& b,
                        double window_ms) {
  size_t j = 0, hits = 0;
  for (double t : a) {
    while (j + 1 < b.size() && b[j + 1] <= t) ++j;
    double nearest = std::fabs(b[j] - t);
    if (j + 1 < b.size()) nearest = std::min(nearest, std::fabs(b[j + 1] - t));
    hits += nearest <= window_ms ? 1 : 0;
  }
  return static_cast<double>(hits) / static_cast<double>(a.size());
}

TEST(PeriodScheduleTest, DrawsEachPeriodWithinTheJitter) {
  PeriodSchedule schedule(50, 0.2, 7);
  const std::vector<double> periods = draws(schedule, 2000);
  double sum = 0;
  for (double p : periods) {
    EXPECT_GE(p, 40.0);
    EXPECT_LE(p, 60.0);
    sum += p;
  }
  EXPECT_NEAR(sum / periods.size(), 50.0, 1.0);  // the nominal period on average
  // the whole range is used, not a few values
  EXPECT_LT(*std::min_element(periods.begin(), periods.end()), 41.0);
  EXPECT_GT(*std::max_element(periods.begin(), periods.end()), 59.0);
}

TEST(PeriodScheduleTest, ZeroJitterIsTheFixedPeriod) {
  PeriodSchedule schedule(50, 0, 7);
  for (double p : draws(schedule, 100)) EXPECT_EQ(p, 50.0);
}

TEST(PeriodScheduleTest, JitterIsBounded) {
  EXPECT_EQ(PeriodSchedule(50, 3, 1).jitter(), PeriodSchedule::kMaxJitter);
  EXPECT_EQ(PeriodSchedule(50, -1, 1).jitter(), 0.0);
  EXPECT_EQ(PeriodSchedule(50, std::numeric_limits<double>::quiet_NaN(), 1).jitter(), 0.0);
  PeriodSchedule wide(50, 3, 1);
  for (double p : draws(wide, 1000)) EXPECT_GE(p, 25.0);  // never a period near zero
}

TEST(PeriodScheduleTest, ASeedRepeatsAndTheDefaultDiffersPerLoop) {
  PeriodSchedule a(50, 0.2, 11), b(50, 0.2, 11);
  EXPECT_EQ(draws(a, 50), draws(b, 50));
  // seeded from the process and the object: two loops of one process draw different periods
  PeriodSchedule c(50, 0.2), d(50, 0.2);
  EXPECT_NE(draws(c, 50), draws(d, 50));
}

TEST(PeriodScheduleTest, TwoLoopsStartedTogetherStopSamplingTogether) {
  // a loop thread runs about a millisecond per step: with fixed periods, every sample of one
  // loop falls within that of the other's, which then sits in the run queue at each sample
  PeriodSchedule fixed_a(50, 0, 1), fixed_b(50, 0, 2);
  EXPECT_EQ(coincident_share(sample_times(fixed_a, 2000), sample_times(fixed_b, 2000), 1.0), 1.0);
  PeriodSchedule a(50, 0.2, 1), b(50, 0.2, 2);
  // random phases: about 2 ms of every 50 (a window of 1 ms either side)
  EXPECT_LT(coincident_share(sample_times(a, 2000), sample_times(b, 2000), 1.0), 0.1);
}

}  // namespace
}  // namespace adascale
