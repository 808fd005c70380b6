#include "compress/channel_pruning.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace adascale::compress {

Importance parse_importance(const std::string& text) {
  if (text == "l1") return Importance::kFilterL1;
  if (text == "bn") return Importance::kBnScale;
  throw std::invalid_argument("unknown channel importance '" + text + "' (l1 or bn)");
}

namespace {
const torch::Tensor& find(const StateDict& state, const std::string& name) {
  auto it = state.find(name);
  if (it == state.end()) throw std::invalid_argument("pruning: no tensor '" + name + "'");
  return it->second;
}
}  // namespace

torch::Tensor channel_importance(const ChannelGroup& g, const StateDict& state, Importance imp) {
  torch::NoGradGuard no_grad;
  auto total = torch::zeros({g.size}, torch::kFloat64);
  const auto& sources = imp == Importance::kFilterL1 ? g.filters : g.bn_scales;
  if (sources.empty()) throw std::invalid_argument("pruning: group " + g.name + " has no sources");
  for (const auto& name : sources) {
    const auto& t = find(state, name);
    if (t.size(0) != g.size)
      throw std::invalid_argument("pruning: '" + name + "' has " + std::to_string(t.size(0)) +
                                  " channels, group " + g.name + " has " + std::to_string(g.size));
    auto per = t.detach().to(torch::kFloat64).abs().reshape({g.size, -1}).sum(1);
    total += per / per.mean().clamp_min(1e-12);
  }
  return total;
}

std::vector<int64_t> importance_order(const torch::Tensor& importance) {
  auto imp = importance.to(torch::kFloat64).contiguous();
  const double* v = imp.data_ptr<double>();
  std::vector<int64_t> order(static_cast<size_t>(imp.numel()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
  return order;
}

std::vector<int64_t> top_channels(const torch::Tensor& importance, int64_t keep) {
  auto order = importance_order(importance);
  keep = std::clamp<int64_t>(keep, 1, static_cast<int64_t>(order.size()));
  order.resize(static_cast<size_t>(keep));
  std::sort(order.begin(), order.end());
  return order;
}

void select_channels(StateDict& state, const ChannelGroup& g,
                     const std::vector<int64_t>& channels) {
  torch::NoGradGuard no_grad;
  for (int64_t c : channels)
    if (c < 0 || c >= g.size)
      throw std::invalid_argument("pruning: channel " + std::to_string(c) + " outside group " +
                                  g.name);
  auto index = torch::tensor(channels, torch::kInt64);
  auto apply = [&](const TensorAxis& ta) {
    auto it = state.find(ta.tensor);
    if (it == state.end()) throw std::invalid_argument("pruning: no tensor '" + ta.tensor + "'");
    if (it->second.size(ta.axis) != g.size)
      throw std::invalid_argument("pruning: '" + ta.tensor + "' axis " + std::to_string(ta.axis) +
                                  " has " + std::to_string(it->second.size(ta.axis)) +
                                  " channels, group " + g.name + " has " + std::to_string(g.size));
    it->second = it->second.index_select(ta.axis, index).contiguous();
  };
  for (const auto& p : g.producers) apply(p);
  for (const auto& c : g.consumers) apply(c);
}

}  // namespace adascale::compress
