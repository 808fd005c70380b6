// MobileNetV2Supernet: the MobileNetV2 multi-branch network (supernet/multi_branch_network.h).
// One shared MobileNetV2 (models/mobilenetv2.h) whose branches are physically smaller
// MobileNetV2s, all trained together once.
//
// Branch dimensions (supernet/branch_space.h):
//   width   a multiplier of every channel count: the stem, each block's expansion (hidden)
//           channels and each stage's output channels. The channels are importance-ordered once
//           (mobilenetv2_channel_groups in models/mobilenetv2_compression.h: a residual chain's
//           channels move together), so width w keeps the leading w-fraction of every layer and
//           slicing the weights is pruning
//   depth   the leading K of a stage's N blocks ("d1/2@4"); the first block carries the stride
//           and the channel change, the skipped ones are residual and absent from the branch
//   op      conv, or lowrankF: the 1x1 expansion and projection of the op stages' blocks as
//   low-rank
//           pairs (a 1x1 reduce to rank F x min(in, out), then the layer's 1x1 from it; the
//           rank scaled with the width), from the SVD of the importance-ordered backbone's
//           weights; variant weights are private to the op and shared by all widths, the
//           leading singular directions first, so a narrower branch keeps the strongest ones
//   exit    the stage after which a linear head (pool + linear, private to the exit) answers
//   precision fp32, or the int8 twin derived at export
// dpconv, fire and exit blocks are ResNet dimensions: a MobileNetV2's 3x3 convolutions are
// depthwise already; the branch space refuses them by name.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/mobilenetv2.h"
#include "supernet/multi_branch_network.h"

namespace adascale::trainer {

class MobileNetV2Supernet : public MultiBranchNetwork {
 public:
  // height x width: the input size, for the MAC counts that rank branches
  MobileNetV2Supernet(MobileNetV2Spec base, BranchSpace space, int64_t height, int64_t width);

  const MobileNetV2Spec& base_spec() const { return base_->spec(); }
  std::vector<compress::ChannelGroup> channel_groups() const override;
  const MobileNetV2Spec& branch_spec(size_t b) const { return specs_.at(b); }
  // copies the factors of op `op` ("lowrank0.50") from the state of the full-width network with
  // its op stages factored (lowrank_mobilenetv2 output)
  void load_variant(const std::string& op, const compress::StateDict& state);

 protected:
  torch::Tensor trunk(size_t b, const torch::Tensor& x,
                      std::vector<torch::Tensor>* stages) override;
  torch::Tensor variant_source(size_t b, const std::string& name) const override;

 private:
  MobileNetV2Spec make_branch_spec(size_t b) const;
  // a 1x1 and its BN; with a rank, its reduce first
  torch::Tensor pointwise(size_t b, const std::string& layer, int64_t rank, const torch::Tensor& x);

  std::shared_ptr<MobileNetV2> base_;
  std::vector<MobileNetV2Spec> specs_;  // per branch, the physical architecture
  // low-rank factors by "op|stages.S.B.layer": "reduce.weight" and "conv.weight", full width
  std::map<std::string, std::map<std::string, torch::Tensor>> variants_;
};

}  // namespace adascale::trainer
