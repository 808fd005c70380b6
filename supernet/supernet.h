// Supernet: the ResNet multi-branch network (supernet/multi_branch_network.h). One shared ResNet
// backbone whose branches are physically smaller variants of it, all trained together once. The
// branch space is supernet/branch_space.h; the training phases are supernet/supernet_training.h.
//
// A branch is one choice per dimension of the branch space (config section [supernet]):
//   width   a multiplier applied to every channel count; channels are importance-ordered once
//           (filter L1, per channel group, see compress/channel_pruning.h), so width w uses the
//           leading w-fraction of every layer and slicing the weights *is* structured pruning
//   op      the 3x3 convolutions of the op stages are plain (conv), depthwise-separable (dpconv),
//           fire (1x1 squeeze to a quarter of the outputs, then a 1x1 and a 3x3 expand whose
//           outputs are concatenated) or spatial low-rank (lowrankF, rank F x full rank, sliced
//           with the width); variant weights are private to the op and shared by all widths.
//           A narrow fire keeps the leading channels of each expand, so the channels after it
//           are the leading ones of each half ("fire order"); every layer reading or writing
//           them, residual additions included, selects the same ones (select())
//   depth   the leading K of a stage's N blocks (elastic depth, "d1/2@3"); the skipped blocks
//           are absent from the materialized branch, the kept ones are the full-depth blocks'
//           weights (BN private, as for every branch)
//   exit    the stage after which a classifier head answers; the last stage uses the backbone's
//           classifier, early exits have heads of their own: global pool + linear
//           ([supernet] exit_head = linear), or a residual block at the exit's channel
//           count (half of it inside), the next stage's stride and the branch's operator, then pool
//           + linear (exit_head = block; the exits of one operator share the block's weights by
//           width, as the trunk does, with BN private; in the physical ResNet it is one more stage
//           of one block, so export and runtime need nothing new)
//   precision fp32, or int8: the int8 twin of an fp32 branch is derived from it at export
//           (calibration, then by default the fp32 branch's own weights quantized when the
//           bundle is prepared, or a fine-tuned copy; export/int8_quantizer.h), so it adds no
//           cost to joint training
// Canonical name: "w0.50", then ">dpconv@2/3" or ">lowrank0.50@2/3" when the op is not conv,
// then ">d1/2@3" when the depth is not full, then ">exit@2" when the exit is not the last stage
// (stages counted from 1), then ">int8".
//
// Every branch keeps its own BatchNorm: private running statistics (recalibrated after training)
// and private scale and shift (switchable BN, as in slimmable networks: one set of affine
// parameters shared by all branches lets the narrow branches pull the wide ones' normalisation
// off, which measurably hurt the largest branch). materialize() turns a branch into a plain
// ResNet (spec JSON + state dict) with the channels removed, which evaluation and the exporter
// use; the forward pass of a branch and its materialized ResNet compute the same function.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/resnet.h"
#include "models/resnet_compression.h"
#include "supernet/multi_branch_network.h"

namespace adascale::trainer {

class Supernet : public MultiBranchNetwork {
 public:
  // height x width: the input size, for the MAC counts that rank branches
  Supernet(ResNetSpec base, BranchSpace space, int64_t height, int64_t width);

  const ResNetSpec& base_spec() const { return base_->spec(); }
  std::vector<compress::ChannelGroup> channel_groups() const override {
    return resnet_channel_groups(base_->spec());
  }
  const ResNetSpec& branch_spec(size_t b) const { return specs_.at(b); }
  // copies variant-slot tensors ("stages.S.B.convN.*") of op `op` from a state dict of the
  // full-width network with that op substituted (lowrank_resnet / substitute_resnet output)
  void load_variant(const std::string& op, const compress::StateDict& state);
  // restarts every exit block (exit_head = block) from the leading channels of the block it
  // stands in for, the first block of the next stage in its full-depth branch, and its
  // classifier from the backbone's
  void reset_exit_blocks() override;

 protected:
  torch::Tensor trunk(size_t b, const torch::Tensor& x,
                      std::vector<torch::Tensor>* stages) override;
  torch::Tensor exit_head(size_t e, const torch::Tensor& stage_output) override;
  torch::Tensor variant_source(size_t b, const std::string& name) const override;
  // leading channels, or for a fire branch the fire-ordered channels where a dimension runs over
  // a fire's output
  torch::Tensor select(size_t b, const std::string& name, torch::Tensor t,
                       const std::vector<int64_t>& shape) const override;

 private:
  ResNetSpec make_branch_spec(size_t b) const;
  torch::Tensor slot_forward(size_t b, const std::string& name, const ConvSlotSpec& spec,
                             const torch::Tensor& x, int64_t stride);
  torch::Tensor block_forward(size_t b, const BlockSpec& blk, const std::string& prefix,
                              const torch::Tensor& x);
  // the module name of an exit's block ("stages.S.0", S the stage after the exit)
  std::string exit_block_prefix(size_t e) const;
  void add_exit_blocks();

  std::shared_ptr<ResNet> base_;
  std::map<std::string, std::shared_ptr<torch::nn::Module>> variants_;  // "op|stages.S.B.convN"
  std::vector<ResNetSpec> specs_;  // per branch, the physical architecture
  // per fire branch: module name -> dimensions over fire-ordered channels (see select)
  std::vector<std::map<std::string, std::vector<int64_t>>> fire_dims_;
  std::map<std::string, std::map<std::string, torch::Tensor>> variant_tensors_;
};

}  // namespace adascale::trainer
