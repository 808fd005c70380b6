#include "base/pareto.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace adascale::base {

std::vector<size_t> pareto_front(const std::vector<double>& cost,
                                 const std::vector<double>& value) {
  if (cost.size() != value.size())
    throw std::invalid_argument("pareto_front: " + std::to_string(cost.size()) + " costs but " +
                                std::to_string(value.size()) + " values");
  for (size_t i = 0; i < cost.size(); ++i)
    if (std::isnan(cost[i]) || std::isnan(value[i]))
      throw std::invalid_argument("pareto_front: point " + std::to_string(i) + " is NaN");

  // by ascending cost, then descending value: a point can only be dominated by one before it
  std::vector<size_t> order(cost.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (cost[a] != cost[b]) return cost[a] < cost[b];
    return value[a] > value[b];
  });

  std::vector<size_t> front;
  for (const size_t i : order) {
    if (front.empty()) {
      front.push_back(i);
      continue;
    }
    // the best value so far is the last kept point's (values rise along the front)
    const size_t last = front.back();
    const bool duplicate = cost[last] == cost[i] && value[last] == value[i];
    if (duplicate || value[i] > value[last]) front.push_back(i);
  }
  return front;
}

}  // namespace adascale::base
