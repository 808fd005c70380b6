#include "models/mobilenetv2_compression.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace adascale::trainer {

std::vector<compress::ChannelGroup> mobilenetv2_expansion_groups(
    const MobileNetV2Spec& spec, const std::vector<int64_t>& stages) {
  std::vector<compress::ChannelGroup> groups;
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    if (!stages.empty() &&
        std::find(stages.begin(), stages.end(), static_cast<int64_t>(s)) == stages.end())
      continue;
    for (size_t b = 0; b < spec.stages[s].size(); ++b) {
      const auto& blk = spec.stages[s][b];
      if (!blk.expand) continue;
      const std::string p = "stages." + std::to_string(s) + "." + std::to_string(b);
      compress::ChannelGroup g;
      g.name = p + ".hidden";
      g.size = blk.hidden;
      for (const char* layer : {".expand", ".depthwise"}) {
        // a depthwise filter is its channel: axis 0 is both its output and its input
        g.producers.push_back({p + layer + ".conv.weight", 0});
        for (const char* field : {".weight", ".bias", ".running_mean", ".running_var"})
          g.producers.push_back({p + layer + ".bn" + field, 0});
        g.bn_scales.push_back(p + layer + ".bn.weight");
      }
      // a factored projection reads the hidden channels in its reduce
      g.consumers.push_back(
          {p + (blk.project_rank ? ".project.reduce" : ".project.conv") + ".weight", 1});
      g.filters.push_back(p + ".expand.conv.weight");
      groups.push_back(std::move(g));
    }
  }
  return groups;
}

namespace {
void add_conv_bn_out(compress::ChannelGroup& g, const std::string& layer, bool filter) {
  g.producers.push_back({layer + ".conv.weight", 0});
  for (const char* field : {".weight", ".bias", ".running_mean", ".running_var"})
    g.producers.push_back({layer + ".bn" + field, 0});
  g.bn_scales.push_back(layer + ".bn.weight");
  if (filter) g.filters.push_back(layer + ".conv.weight");
}
}  // namespace

std::vector<compress::ChannelGroup> mobilenetv2_channel_groups(const MobileNetV2Spec& spec) {
  std::vector<compress::ChannelGroup> groups;
  compress::ChannelGroup chain;
  chain.name = "stem";
  chain.size = spec.stem;
  add_conv_bn_out(chain, "stem", true);
  for (size_t s = 0; s < spec.stages.size(); ++s)
    for (size_t b = 0; b < spec.stages[s].size(); ++b) {
      const auto& blk = spec.stages[s][b];
      const std::string p = "stages." + std::to_string(s) + "." + std::to_string(b);
      const auto reader = [&](const char* layer, int64_t rank) {
        return p + layer + (rank ? ".reduce" : ".conv") + ".weight";
      };
      if (blk.expand) {
        chain.consumers.push_back({reader(".expand", blk.expand_rank), 1});
      } else {
        // the depthwise filters run over the block's input channels themselves
        add_conv_bn_out(chain, p + ".depthwise", false);
        chain.consumers.push_back({reader(".project", blk.project_rank), 1});
      }
      if (!blk.residual()) {
        groups.push_back(std::move(chain));
        chain = compress::ChannelGroup{};
        chain.name = p + ".out";
        chain.size = blk.out;
      }
      // a residual block adds its projection into the chain's channels: one group
      add_conv_bn_out(chain, p + ".project", true);
    }
  chain.consumers.push_back({"fc.weight", 1});
  groups.push_back(std::move(chain));
  for (auto& g : mobilenetv2_expansion_groups(spec)) groups.push_back(std::move(g));
  return groups;
}

CompressedMobileNetV2 prune_mobilenetv2(const CompressedMobileNetV2& model, double keep_fraction,
                                        const std::vector<int64_t>& stages,
                                        compress::Importance importance) {
  if (!(keep_fraction > 0.0 && keep_fraction <= 1.0))
    throw std::invalid_argument("prune: keep fraction must be in (0, 1]");
  CompressedMobileNetV2 out = model;
  for (auto& [name, t] : out.state) t = t.clone();
  for (const auto& g : mobilenetv2_expansion_groups(model.spec, stages)) {
    const auto keep =
        std::max<int64_t>(1, std::lround(keep_fraction * static_cast<double>(g.size)));
    const auto channels =
        compress::top_channels(compress::channel_importance(g, out.state, importance), keep);
    compress::select_channels(out.state, g, channels);
    // "stages.S.B.hidden" -> the block's spec
    const auto s = std::stoul(g.name.substr(7));
    const auto b = std::stoul(g.name.substr(g.name.find('.', 7) + 1));
    out.spec.stages[s][b].hidden = keep;
  }
  out.spec.validate();
  return out;
}

int64_t pointwise_rank(double rank_fraction, int64_t in, int64_t out) {
  return std::max<int64_t>(1, std::lround(rank_fraction * static_cast<double>(std::min(in, out))));
}

CompressedMobileNetV2 lowrank_mobilenetv2(const CompressedMobileNetV2& model, double rank_fraction,
                                          const std::vector<int64_t>& stages) {
  if (!(rank_fraction > 0.0 && rank_fraction <= 1.0))
    throw std::invalid_argument("lowrank: rank fraction must be in (0, 1]");
  CompressedMobileNetV2 out = model;
  torch::NoGradGuard no_grad;
  auto factor = [&](const std::string& layer, int64_t* rank) {
    if (*rank) throw ConfigError("lowrank: " + layer + " is factored already");
    const auto w = out.state.at(layer + ".conv.weight");  // out x in x 1 x 1
    const auto m = w.flatten(1).to(torch::kFloat64);
    const int64_t r = pointwise_rank(rank_fraction, m.size(1), m.size(0));
    const auto [u, s, vh] = torch::linalg::svd(m, /*full_matrices=*/false, {});
    const auto root = s.slice(0, 0, r).sqrt();
    out.state[layer + ".reduce.weight"] =
        (root.unsqueeze(1) * vh.slice(0, 0, r)).to(w.dtype()).reshape({r, m.size(1), 1, 1});
    out.state[layer + ".conv.weight"] =
        (u.slice(1, 0, r) * root.unsqueeze(0)).to(w.dtype()).reshape({m.size(0), r, 1, 1});
    *rank = r;
  };
  for (size_t s = 0; s < out.spec.stages.size(); ++s) {
    if (!stages.empty() &&
        std::find(stages.begin(), stages.end(), static_cast<int64_t>(s)) == stages.end())
      continue;
    for (size_t b = 0; b < out.spec.stages[s].size(); ++b) {
      auto& blk = out.spec.stages[s][b];
      const std::string p = "stages." + std::to_string(s) + "." + std::to_string(b);
      if (blk.expand) factor(p + ".expand", &blk.expand_rank);
      factor(p + ".project", &blk.project_rank);
    }
  }
  out.spec.validate();
  return out;
}

}  // namespace adascale::trainer
