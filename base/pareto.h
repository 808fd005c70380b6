// Pareto front of points (cost, value): lower cost is better, higher value is better. Shared by
// the exporter (which branches a bundle offers) and the tools that report trade-offs, so both
// pick the same branches. std only.
//
// The cost axis is whatever the caller passes; the project's convention is measured latency
// (not FLOPs or parameter counts), since that is what the device selects on.
//
//   pareto_front(cost, value)  indices of the points that no other point dominates, sorted by
//                              ascending cost (ties by index). A point dominates another when its
//                              cost is lower or equal AND its value higher or equal, one of them
//                              strictly. Exact duplicates do not dominate each other: all of them
//                              are kept. Throws std::invalid_argument when the sizes differ or a
//                              cost or value is NaN (no order, so no front).
#pragma once

#include <cstddef>
#include <vector>

namespace adascale::base {

std::vector<size_t> pareto_front(const std::vector<double>& cost, const std::vector<double>& value);

}  // namespace adascale::base
