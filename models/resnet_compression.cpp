#include "models/resnet_compression.h"

#include <cmath>
#include <iomanip>

#include "compress/conv_variants.h"
#include "compress/low_rank.h"
#include "models/module_state.h"

namespace adascale::trainer {
namespace {

using compress::ChannelGroup;
using compress::StateDict;

std::string block_name(size_t s, size_t b) {
  return "stages." + std::to_string(s) + "." + std::to_string(b);
}

void add_bn(ChannelGroup& g, const std::string& bn) {
  for (const char* field : {"weight", "bias", "running_mean", "running_var"})
    g.producers.push_back({bn + "." + field, 0});
  g.bn_scales.push_back(bn + ".weight");
}

void add_conv_out(ChannelGroup& g, const std::string& conv) {
  g.producers.push_back({conv + ".weight", 0});
  g.filters.push_back(conv + ".weight");
}

// spec sizes follow the tensors after channels were removed
void sync_spec_sizes(CompressedResNet& m) {
  m.spec.stem = m.state.at("stem.conv.weight").size(0);
  int64_t in = m.spec.stem;
  for (size_t s = 0; s < m.spec.stages.size(); ++s)
    for (size_t b = 0; b < m.spec.stages[s].size(); ++b) {
      auto& blk = m.spec.stages[s][b];
      const auto name = block_name(s, b);
      blk.in = in;
      blk.mid = m.state.at(name + ".bn1.weight").size(0);
      blk.out = m.state.at(name + ".bn2.weight").size(0);
      in = blk.out;
    }
}

}  // namespace

std::vector<ChannelGroup> resnet_channel_groups(const ResNetSpec& spec) {
  std::vector<ChannelGroup> groups;
  ChannelGroup trunk;
  trunk.name = "stem";
  trunk.size = spec.stem;
  add_conv_out(trunk, "stem.conv");
  add_bn(trunk, "stem.bn");
  for (size_t s = 0; s < spec.stages.size(); ++s)
    for (size_t b = 0; b < spec.stages[s].size(); ++b) {
      const auto& blk = spec.stages[s][b];
      const auto name = block_name(s, b);
      if (blk.conv1.kind != "conv" || blk.conv2.kind != "conv")
        throw ConfigError("pruning needs plain convolutions; " + name + " is already compressed");
      ChannelGroup mid;
      mid.name = name + ".mid";
      mid.size = blk.mid;
      add_conv_out(mid, name + ".conv1");
      add_bn(mid, name + ".bn1");
      mid.consumers.push_back({name + ".conv2.weight", 1});
      groups.push_back(mid);

      trunk.consumers.push_back({name + ".conv1.weight", 1});
      if (blk.has_shortcut_conv()) {
        trunk.consumers.push_back({name + ".shortcut.conv.weight", 1});
        groups.push_back(trunk);
        trunk = ChannelGroup{};
        trunk.name = name + ".out";
        trunk.size = blk.out;
        add_conv_out(trunk, name + ".shortcut.conv");
        add_bn(trunk, name + ".shortcut.bn");
      }
      // identity shortcut: conv2's outputs are added to the trunk channels, one group
      add_conv_out(trunk, name + ".conv2");
      add_bn(trunk, name + ".bn2");
    }
  trunk.consumers.push_back({"fc.weight", 1});
  groups.push_back(trunk);
  return groups;
}

CompressedResNet prune_resnet(const CompressedResNet& model, double keep_fraction,
                              compress::Importance importance) {
  CompressedResNet out = model;
  // rank every group on the trained weights first: removing one group's channels changes the
  // input side of other groups' filters, which must not change their ranking
  const auto groups = resnet_channel_groups(model.spec);
  std::vector<std::vector<int64_t>> keep;
  for (const auto& g : groups)
    keep.push_back(
        compress::top_channels(compress::channel_importance(g, model.state, importance),
                               static_cast<int64_t>(std::lround(keep_fraction * g.size))));
  for (size_t i = 0; i < groups.size(); ++i)
    compress::select_channels(out.state, groups[i], keep[i]);
  sync_spec_sizes(out);
  out.spec.validate();
  return out;
}

CompressedResNet lowrank_resnet(const CompressedResNet& model, double rank_fraction,
                                const std::vector<int64_t>& stages) {
  CompressedResNet out = model;
  for (int64_t s : stages) {
    if (s < 0 || s >= static_cast<int64_t>(out.spec.stages.size()))
      throw ConfigError("lowrank: the network has no stage " + std::to_string(s + 1));
    for (size_t b = 0; b < out.spec.stages[s].size(); ++b)
      for (auto [slot, spec] : {std::pair{"conv1", &out.spec.stages[s][b].conv1},
                                std::pair{"conv2", &out.spec.stages[s][b].conv2}}) {
        const auto name = block_name(s, b) + "." + slot;
        if (spec->kind != "conv")
          throw ConfigError("lowrank: " + name + " is already " + spec->kind);
        const auto w = out.state.at(name + ".weight");
        const int64_t rank =
            std::max<int64_t>(1, std::lround(rank_fraction * compress::full_spatial_rank(w)));
        auto f = compress::decompose_spatial(w, rank);
        out.state.erase(name + ".weight");
        out.state[name + ".v.weight"] = f.v;
        out.state[name + ".h.weight"] = f.h;
        *spec = {"lowrank", f.v.size(0), 0};
      }
  }
  out.spec.validate();
  return out;
}

CompressedResNet substitute_resnet(const CompressedResNet& model, const std::string& kind,
                                   double squeeze_ratio, const std::vector<int64_t>& stages,
                                   const torch::Tensor& calibration,
                                   const compress::DistillOptions& options, std::ostream* log) {
  CompressedResNet out = model;
  // inputs and outputs of every slot, captured once from the model as it was
  ResNet original(model.spec);
  load_module_state(original, model.state, "compression input");
  original.eval();
  std::map<std::string, std::vector<torch::Tensor>> inputs;
  {
    torch::NoGradGuard no_grad;
    for (int64_t b = 0; b < calibration.size(0); b += 256) {
      std::map<std::string, torch::Tensor> captured;
      original.forward_capture(calibration.slice(0, b, std::min(calibration.size(0), b + 256)),
                               &captured);
      for (auto& [name, t] : captured) inputs[name].push_back(t);
    }
  }
  for (int64_t s : stages) {
    if (s < 0 || s >= static_cast<int64_t>(out.spec.stages.size()))
      throw ConfigError(kind + ": the network has no stage " + std::to_string(s + 1));
    for (size_t b = 0; b < out.spec.stages[s].size(); ++b) {
      auto& blk = out.spec.stages[s][b];
      for (auto [slot, spec] : {std::pair{"conv1", &blk.conv1}, std::pair{"conv2", &blk.conv2}}) {
        const auto name = block_name(s, b) + "." + slot;
        if (spec->kind != "conv")
          throw ConfigError(kind + ": " + name + " is already " + spec->kind);
        const bool first = std::string(slot) == "conv1";
        const int64_t in = first ? blk.in : blk.mid, outc = first ? blk.mid : blk.out;
        const int64_t stride = first ? blk.stride : 1;
        compress::ConvVariantSpec v{kind, 0, 0};
        if (kind == "fire") v.squeeze = compress::fire_squeeze_channels(outc, squeeze_ratio);
        auto student = compress::make_conv_slot(v, in, outc, 3, stride);
        auto x = torch::cat(inputs.at(name));
        torch::Tensor target;
        {
          torch::NoGradGuard no_grad;
          target = compress::forward_conv_slot(*original.module_named(name), x);
        }
        const double err = compress::distill_slot(*student, x, target, options);
        if (log)
          *log << "  " << name << " -> " << kind << ": relative error " << std::setprecision(4)
               << err << "\n";
        out.state.erase(name + ".weight");
        for (const auto& p : student->named_parameters())
          out.state[name + "." + p.key()] = p.value().detach().clone();
        for (const auto& p : student->named_buffers())
          out.state[name + "." + p.key()] = p.value().detach().clone();
        *spec = v;
      }
    }
  }
  out.spec.validate();
  return out;
}

}  // namespace adascale::trainer
