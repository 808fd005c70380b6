#include "supernet/mobilenetv2_supernet.h"

#include "supernet/detail.h"

namespace adascale::trainer {

using namespace supernet_detail;

namespace {
torch::Tensor clamp6(const torch::Tensor& x) { return torch::hardtanh(x, 0.0, 6.0); }
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
  for (const auto& op : space_.ops)
    if (op.kind != OperatorKind::kConv)
      throw ConfigError("supernet.ops: '" + op.name() + "' does not apply to a mobilenetv2");
  std::vector<std::string> specs;
  for (size_t b = 0; b < branch_count(); ++b) {
    specs_.push_back(make_branch_spec(b));
    specs.push_back(specs_.back().to_json());
  }
  set_branch_specs(std::move(specs), base_->spec().in_channels);
  add_linear_exit_heads(base_->spec().classes);
  add_private_bn();
  pick_extremes();
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
    for (auto& blk : s.stages[st]) {
      // a block without expansion works on its input channels (hidden = in), scaled alike
      blk.in = scaled(blk.in, c.width);
      blk.hidden = scaled(blk.hidden, c.width);
      blk.out = scaled(blk.out, c.width);
    }
  }
  return s;
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
      if (blk.expand)
        y = clamp6(
            batch_norm(b, p + ".expand.bn", conv(y, tensor(b, p + ".expand.conv.weight"), 1, 0)));
      y = clamp6(
          batch_norm(b, p + ".depthwise.bn",
                     conv(y, tensor(b, p + ".depthwise.conv.weight"), blk.stride, 1, blk.hidden)));
      y = batch_norm(b, p + ".project.bn", conv(y, tensor(b, p + ".project.conv.weight"), 1, 0));
      x = blk.residual() ? y + x : y;
      if (stages && k + 1 == spec.stages[s].size()) stages->push_back(x);
    }
  return torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
}

}  // namespace adascale::trainer
