// base/statistics.h and base/pareto.h: the shared order statistics and Pareto front.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "base/pareto.h"
#include "base/statistics.h"

namespace {

using adascale::base::pareto_front;
using adascale::base::percentile;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(BasePercentile, EmptyIsNaN) { EXPECT_TRUE(std::isnan(percentile({}, 0.5))); }

TEST(BasePercentile, SingleValueAtEveryQ) {
  for (const double q : {0.0, 0.25, 0.5, 0.99, 1.0}) EXPECT_EQ(percentile({7.5}, q), 7.5);
}

TEST(BasePercentile, EndsAreMinAndMax) {
  const std::vector<double> v{5, -1, 3, 9, 2};
  EXPECT_EQ(percentile(v, 0.0), -1.0);
  EXPECT_EQ(percentile(v, 1.0), 9.0);
}

TEST(BasePercentile, MedianOfEvenCountIsMeanOfMiddle) {
  EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3}, 0.5), 2.0);
}

TEST(BasePercentile, LinearInterpolationMatchesNumpy) {
  // numpy.percentile([1..10], [25, 90, 95, 99]) -> 3.25, 9.1, 9.55, 9.91
  std::vector<double> v;
  for (int i = 10; i >= 1; --i) v.push_back(i);
  EXPECT_DOUBLE_EQ(percentile(v, 0.25), 3.25);
  EXPECT_DOUBLE_EQ(percentile(v, 0.90), 9.1);
  EXPECT_DOUBLE_EQ(percentile(v, 0.95), 9.55);
  EXPECT_NEAR(percentile(v, 0.99), 9.91, 1e-12);
}

TEST(BasePercentile, DuplicatesAndInfinities) {
  EXPECT_EQ(percentile({2, 2, 2, 2}, 0.37), 2.0);
  EXPECT_EQ(percentile({1, kInf, kInf}, 0.75), kInf);
  EXPECT_EQ(percentile({1, kInf}, 0.5), kInf);
}

TEST(BasePercentile, QOutsideUnitIntervalThrows) {
  EXPECT_THROW(percentile({1, 2}, -0.01), std::invalid_argument);
  EXPECT_THROW(percentile({1, 2}, 1.01), std::invalid_argument);
  EXPECT_THROW(percentile({1, 2}, kNaN), std::invalid_argument);
  // also with no values: the argument is wrong whatever the data
  EXPECT_THROW(percentile({}, 2.0), std::invalid_argument);
}

TEST(BasePareto, EmptyAndSingle) {
  EXPECT_TRUE(pareto_front({}, {}).empty());
  EXPECT_EQ(pareto_front({3}, {0.5}), (std::vector<size_t>{0}));
}

TEST(BasePareto, DominatedPointsDroppedSortedByCost) {
  // cost (latency) and value (accuracy); 1 is dominated by 0, 3 by 2
  const std::vector<double> cost{1.0, 2.0, 3.0, 4.0, 0.5};
  const std::vector<double> value{0.7, 0.6, 0.9, 0.8, 0.5};
  EXPECT_EQ(pareto_front(cost, value), (std::vector<size_t>{4, 0, 2}));
}

TEST(BasePareto, TiesDominateWhenOneAxisIsStrict) {
  // same cost, lower value: dominated; same value, higher cost: dominated
  EXPECT_EQ(pareto_front({1, 1}, {0.5, 0.6}), (std::vector<size_t>{1}));
  EXPECT_EQ(pareto_front({2, 1}, {0.6, 0.6}), (std::vector<size_t>{1}));
}

TEST(BasePareto, ExactDuplicatesAreAllKept) {
  const std::vector<double> cost{1, 2, 1, 2};
  const std::vector<double> value{0.5, 0.8, 0.5, 0.8};
  EXPECT_EQ(pareto_front(cost, value), (std::vector<size_t>{0, 2, 1, 3}));
}

TEST(BasePareto, InfiniteCostStaysOnlyWhenBetter) {
  EXPECT_EQ(pareto_front({1, kInf}, {0.5, 0.9}), (std::vector<size_t>{0, 1}));
  EXPECT_EQ(pareto_front({1, kInf}, {0.9, 0.9}), (std::vector<size_t>{0}));
}

TEST(BasePareto, NaNAndSizeMismatchRefused) {
  EXPECT_THROW(pareto_front({1, kNaN}, {0.5, 0.6}), std::invalid_argument);
  EXPECT_THROW(pareto_front({1, 2}, {0.5, kNaN}), std::invalid_argument);
  EXPECT_THROW(pareto_front({1, 2}, {0.5}), std::invalid_argument);
}

}  // namespace
