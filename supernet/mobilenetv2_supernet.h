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
//   exit    the stage after which a linear head (pool + linear, private to the exit) answers
//   precision fp32, or the int8 twin derived at export
// Operators (dpconv, fire, lowrank) and exit blocks are ResNet dimensions: a MobileNetV2's 3x3
// convolutions are depthwise already; the branch space refuses them by name.
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
  const MobileNetV2Spec& branch_spec(size_t b) const { return specs_.at(b); }

 protected:
  torch::Tensor trunk(size_t b, const torch::Tensor& x,
                      std::vector<torch::Tensor>* stages) override;

 private:
  MobileNetV2Spec make_branch_spec(size_t b) const;

  std::shared_ptr<MobileNetV2> base_;
  std::vector<MobileNetV2Spec> specs_;  // per branch, the physical architecture
};

}  // namespace adascale::trainer
