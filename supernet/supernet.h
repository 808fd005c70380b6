// Supernet: the multi-branch network. One shared ResNet backbone whose branches are physically
// smaller variants of it, all trained together once. The branch space is supernet/branch_space.h;
// the training phases are supernet/supernet_training.h.
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
// ResNetSpec + state dict with the channels removed, which evaluation and the exporter use; the
// forward pass of a branch and its materialized ResNet compute the same function.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/backbone.h"
#include "models/resnet.h"
#include "models/resnet_compression.h"
#include "supernet/branch_space.h"

namespace adascale::trainer {

class Supernet : public Backbone {
 public:
  // height x width: the input size, for the MAC counts that rank branches
  Supernet(ResNetSpec base, BranchSpace space, int64_t height, int64_t width);

  // the active branch (the largest unless set_active was called)
  torch::Tensor forward(torch::Tensor x) override;
  torch::Tensor forward_branch(size_t branch, const torch::Tensor& x);
  torch::Tensor forward_features(size_t branch, const torch::Tensor& x);  // pooled, before the head
  // the branch's logits and, from the same pass, those of its early exits (early_exits_of), in
  // that order; with detach_exits the exits see the trunk's features detached (their loss trains
  // their heads alone)
  torch::Tensor forward_with_exits(size_t branch, const torch::Tensor& x,
                                   std::vector<torch::Tensor>* exit_logits,
                                   bool detach_exits = false);
  // the early-exit branches whose trunk is full-depth branch `b` (same width and op)
  const std::vector<size_t>& early_exits_of(size_t b) const { return exits_of_.at(b); }
  void set_active(size_t branch) { active_ = branch; }

  size_t branch_count() const { return space_.branches.size(); }
  const BranchChoice& branch(size_t b) const { return space_.branches.at(b); }
  const BranchSpace& space() const { return space_; }
  size_t largest() const { return largest_; }    // most MACs
  size_t smallest() const { return smallest_; }  // fewest MACs among full-depth branches
  int64_t branch_macs(size_t b) const { return macs_.at(b); }

  const ResNetSpec& branch_spec(size_t b) const { return specs_.at(b); }
  // the branch as a plain ResNet: channels removed, factors sliced, its own BN statistics
  CompressedResNet materialize(size_t b) const;
  // the same, built and loaded as a module in eval mode
  std::shared_ptr<ResNet> physical(size_t b) const;
  // running_mean / running_var of a branch, by the materialized BN names
  void set_branch_bn_stats(size_t b, const compress::StateDict& stats);

  ResNet& base() { return *base_; }
  const ResNetSpec& base_spec() const { return base_->spec(); }
  // copies variant-slot tensors ("stages.S.B.convN.*") of op `op` from a state dict of the
  // full-width network with that op substituted (lowrank_resnet / substitute_resnet output)
  void load_variant(const std::string& op, const compress::StateDict& state);
  // copies the shared BN scales and shifts, sliced, into every branch's private ones (after the
  // shared weights were loaded or initialised)
  void reset_private_bn();
  // restarts every exit block (exit_head = block) from the leading channels of the block it
  // stands in for, the first block of the next stage in its full-depth branch, and its
  // classifier from the backbone's
  void reset_exit_blocks();
  // fits every early-exit classifier (the linear layer) on the pooled features of the exit branch's
  // trunk (its own BN statistics) for `images` (normalized NCHW): ridge regression of the largest
  // branch's logits, then, given labels, `steps` of full-batch training of the head alone on (1 -
  // distill_weight) x cross-entropy + distill_weight x the largest branch's soft answers. An early
  // exit's trunk is the full-depth branch of the same width and op (whose BN it shares); with
  // linear heads and [supernet] exit_weight = 0, this fit is how the exits learn at all.
  void fit_exit_heads(const torch::Tensor& images, const torch::Tensor& labels = {},
                      double distill_weight = 0.5, int64_t steps = 300);
  bool is_early_exit(size_t b) const { return exit_tensors_.count(b) > 0; }

  std::string describe() const override;
  // the shared backbone's blocks and slots, named as this module holds them ("base.stages.1.0")
  std::vector<std::vector<BlockSlots>> stages() const override;
  std::string spec_json() const override;  // base spec + branch space (+ extra, if set)
  void set_extra_json(const std::string& json) { extra_json_ = json; }
  static bool is_supernet_spec(const std::string& spec_json);
  static std::shared_ptr<Supernet> from_spec_json(const std::string& spec_json);

  // parameters, buffers and per-branch BN statistics ("bnstats.<branch>.<name>")
  compress::StateDict full_state() const;
  void load_full_state(const compress::StateDict& state, const std::string& origin);

 private:
  ResNetSpec make_branch_spec(size_t b) const;
  torch::Tensor source(size_t b, const std::string& name) const;
  torch::Tensor tensor(size_t b, const std::string& name) const;  // source sliced to shape
  // t (a source tensor of `name`) cut to `shape` the way branch b cuts it: leading channels, or
  // for a fire branch the fire-ordered channels where a dimension runs over a fire's output
  torch::Tensor select(size_t b, const std::string& name, torch::Tensor t,
                       const std::vector<int64_t>& shape) const;
  torch::Tensor slot_forward(size_t b, const std::string& name, const ConvSlotSpec& spec,
                             const torch::Tensor& x, int64_t stride);
  torch::Tensor batch_norm(size_t b, const std::string& name, const torch::Tensor& x);
  torch::Tensor block_forward(size_t b, const BlockSpec& blk, const std::string& prefix,
                              const torch::Tensor& x);
  // pooled features of the trunk; with `stages`, also the output of every stage (not pooled)
  torch::Tensor trunk(size_t b, const torch::Tensor& x, std::vector<torch::Tensor>* stages);
  // the logits of early exit `e` for the output of its exit stage
  torch::Tensor exit_head(size_t e, const torch::Tensor& stage_output);
  // the module name of an exit's block ("stages.S.0", S the stage after the exit)
  std::string exit_block_prefix(size_t e) const;

  BranchSpace space_;
  std::shared_ptr<ResNet> base_;
  std::map<std::string, std::shared_ptr<torch::nn::Module>> variants_;  // "op|stages.S.B.convN"
  std::vector<std::vector<size_t>> exits_of_;  // per full-depth branch, its early exits
  std::vector<std::map<std::string, std::vector<int64_t>>> shapes_;  // per branch
  std::vector<compress::StateDict> bn_stats_;                        // per branch
  std::vector<compress::StateDict> bn_params_;  // per branch: private BN weight and bias
  std::vector<ResNetSpec> specs_;               // per branch, the physical architecture
  // per fire branch: module name -> dimensions over fire-ordered channels (see select)
  std::vector<std::map<std::string, std::vector<int64_t>>> fire_dims_;
  std::vector<int64_t> macs_;
  int64_t height_ = 0, width_ = 0;
  // tensor handles by name (weights are loaded in place, so the handles stay valid)
  std::map<std::string, torch::Tensor> base_tensors_;
  std::map<std::string, std::map<std::string, torch::Tensor>> variant_tensors_;
  // early-exit heads, by branch and physical name ("fc.weight", and the exit block's tensors)
  std::map<size_t, std::map<std::string, torch::Tensor>> exit_tensors_;
  size_t largest_ = 0, smallest_ = 0, active_ = 0;
  std::string extra_json_;
};

}  // namespace adascale::trainer
