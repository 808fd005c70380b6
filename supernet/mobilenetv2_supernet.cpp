#include "supernet/mobilenetv2_supernet.h"

#include <tuple>

#include "models/mobilenetv2_compression.h"
#include "supernet/detail.h"

namespace adascale::trainer {

using namespace supernet_detail;

namespace {
torch::Tensor clamp6(const torch::Tensor& x) { return torch::hardtanh(x, 0.0, 6.0); }

std::string variant_key(const Operator& op, const std::string& layer) {
  return op.name() + "|" + layer;
}

// the 1x1 layers of a block that a low-rank op factors, with their input and output channels
std::vector<std::tuple<std::string, int64_t, int64_t>> pointwise_layers(
    const InvertedResidualSpec& blk, const std::string& prefix) {
  std::vector<std::tuple<std::string, int64_t, int64_t>> out;
  if (blk.expand) out.emplace_back(prefix + ".expand", blk.in, blk.hidden);
  out.emplace_back(prefix + ".project", blk.hidden, blk.out);
  return out;
}
}  // namespace

MobileNetV2Supernet::MobileNetV2Supernet(MobileNetV2Spec base, BranchSpace space, int64_t height,
                                         int64_t width)
    : MultiBranchNetwork((base.validate(), std::make_shared<MobileNetV2>(base)), std::move(space),
                         height, width),
      base_(std::static_pointer_cast<MobileNetV2>(backbone_)) {
  if (space_.exit_head != "linear")
    throw ConfigError("supernet.exit_head: a mobilenetv2 branch space has linear exit heads only");
  for (const auto& stage : base_->spec().stages)
    for (const auto& blk : stage)
      if (blk.expand_rank || blk.project_rank)
        throw ConfigError("a multi-branch mobilenetv2's base has no low-rank factors");
  const auto& spec = base_->spec();
  for (const auto& op : space_.ops) {
    if (op.kind == OperatorKind::kConv) continue;
    if (op.kind != OperatorKind::kLowRank)
      throw ConfigError("supernet.ops: '" + op.name() + "' does not apply to a mobilenetv2");
    for (int64_t s : space_.op_stages)
      for (size_t k = 0; k < spec.stages[s].size(); ++k)
        for (const auto& [layer, in, out] :
             pointwise_layers(spec.stages[s][k], block_prefix(s, k))) {
          // the full-width layer's, as lowrank_mobilenetv2 factors it
          const int64_t rank = pointwise_rank(op.amount, in, out);
          auto& v = variants_[variant_key(op, layer)];
          const std::string name = registered_name("v_" + op.name() + "_" + layer);
          v["reduce.weight"] = register_parameter(name + "_reduce", torch::zeros({rank, in, 1, 1}));
          v["conv.weight"] = register_parameter(name + "_conv", torch::zeros({out, rank, 1, 1}));
        }
  }
  std::vector<std::string> specs;
  for (size_t b = 0; b < branch_count(); ++b) {
    specs_.push_back(make_branch_spec(b));
    specs.push_back(specs_.back().to_json());
  }
  set_branch_specs(std::move(specs), spec.in_channels);
  add_linear_exit_heads(spec.classes);
  add_private_bn();
  pick_extremes();
}

std::vector<compress::ChannelGroup> MobileNetV2Supernet::channel_groups() const {
  return mobilenetv2_channel_groups(base_->spec());
}

MobileNetV2Spec MobileNetV2Supernet::make_branch_spec(size_t b) const {
  const auto& c = branch(b);
  MobileNetV2Spec s = base_->spec();
  s.stem = scaled(s.stem, c.width);
  s.stages.resize(c.exit_stage + 1);
  for (size_t st = 0; st < s.stages.size(); ++st) {
    // elastic depth: the stage's leading blocks (the first one carries the stride and the
    // channel change, so any prefix keeps the shapes)
    s.stages[st].resize(
        c.depth.blocks_of(static_cast<int64_t>(st), static_cast<int64_t>(s.stages[st].size())));
    for (size_t k = 0; k < s.stages[st].size(); ++k) {
      auto& blk = s.stages[st][k];
      // a block without expansion works on its input channels (hidden = in), scaled alike
      blk.in = scaled(blk.in, c.width);
      blk.hidden = scaled(blk.hidden, c.width);
      blk.out = scaled(blk.out, c.width);
      if (c.op.kind != OperatorKind::kLowRank) continue;
      // the factored layers of an op stage: the rank scales with the width
      const std::string p = block_prefix(st, k);
      auto rank = [&](const std::string& layer) {
        auto it = variants_.find(variant_key(c.op, p + layer));
        return it == variants_.end() ? int64_t{0}
                                     : scaled(it->second.at("reduce.weight").size(0), c.width);
      };
      if (blk.expand) blk.expand_rank = rank(".expand");
      blk.project_rank = rank(".project");
    }
  }
  return s;
}

torch::Tensor MobileNetV2Supernet::variant_source(size_t b, const std::string& name) const {
  const auto& c = branch(b);
  if (c.op.kind != OperatorKind::kLowRank) return {};
  // "stages.S.B.<layer>.reduce.weight" or ".conv.weight" of a factored layer
  for (const char* field : {"reduce.weight", "conv.weight"}) {
    const std::string tail = std::string(".") + field;
    if (!ends_with(name, tail)) continue;
    auto it = variants_.find(variant_key(c.op, name.substr(0, name.size() - tail.size())));
    if (it != variants_.end()) return it->second.at(field);
  }
  return {};
}

void MobileNetV2Supernet::load_variant(const std::string& op, const compress::StateDict& state) {
  torch::NoGradGuard no_grad;
  for (auto& [key, tensors] : variants_) {
    if (key.rfind(op + "|", 0) != 0) continue;
    const std::string layer = key.substr(op.size() + 1);
    for (auto& [field, t] : tensors) {
      auto it = state.find(layer + "." + field);
      if (it == state.end() || it->second.sizes() != t.sizes())
        throw std::invalid_argument("mobilenetv2 supernet: variant " + op + " lacks " + layer +
                                    "." + field);
      t.copy_(it->second);
    }
  }
}

torch::Tensor MobileNetV2Supernet::pointwise(size_t b, const std::string& layer, int64_t rank,
                                             const torch::Tensor& x) {
  const auto in = rank ? conv(x, tensor(b, layer + ".reduce.weight"), 1, 0) : x;
  return batch_norm(b, layer + ".bn", conv(in, tensor(b, layer + ".conv.weight"), 1, 0));
}

torch::Tensor MobileNetV2Supernet::trunk(size_t b, const torch::Tensor& input,
                                         std::vector<torch::Tensor>* stages) {
  const MobileNetV2Spec& spec = specs_[b];
  auto x = clamp6(batch_norm(b, "stem.bn", conv(input, tensor(b, "stem.conv.weight"), 1, 1)));
  for (size_t s = 0; s < spec.stages.size(); ++s)
    for (size_t k = 0; k < spec.stages[s].size(); ++k) {
      const auto& blk = spec.stages[s][k];
      const std::string p = block_prefix(s, k);
      auto y = x;
      if (blk.expand) y = clamp6(pointwise(b, p + ".expand", blk.expand_rank, y));
      y = clamp6(
          batch_norm(b, p + ".depthwise.bn",
                     conv(y, tensor(b, p + ".depthwise.conv.weight"), blk.stride, 1, blk.hidden)));
      y = pointwise(b, p + ".project", blk.project_rank, y);
      x = blk.residual() ? y + x : y;
      if (stages && k + 1 == spec.stages[s].size()) stages->push_back(x);
    }
  return torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
}

}  // namespace adascale::trainer
