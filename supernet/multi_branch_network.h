// MultiBranchNetwork: a multi-branch network as the training phases, evaluation and the exporter
// see it, whatever its backbone family, and the machinery the families share.
//
// A branch (supernet/branch_space.h) is a physical network of the family: a spec with fewer
// channels, blocks or stages. Its tensors are the shared ones cut to that network's shapes (the
// leading channels of each, which an importance order made the most useful ones), except its
// BatchNorm, which is its own (private scale, shift and running statistics: switchable BN, as in
// slimmable networks), and, for an early exit, its classifier. materialize() turns a branch into
// that plain network's spec and state; a branch's forward pass and its materialized network
// compute the same function.
//
// A family builds each branch's spec and writes the forward pass of its trunk:
// supernet/supernet.h (ResNet, with operator variants and exit blocks) and
// supernet/mobilenetv2_supernet.h (MobileNetV2).
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compress/channel_pruning.h"
#include "models/backbone.h"
#include "supernet/branch_space.h"

namespace adascale::trainer {

// a branch as a plain network of its family: its spec (JSON, models/) and its weights
struct BranchModel {
  std::string spec_json;
  compress::StateDict state;
};

class MultiBranchNetwork : public Backbone {
 public:
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
  bool is_early_exit(size_t b) const { return branch(b).exit_stage != space_.exits.back(); }
  void set_active(size_t branch) { active_ = branch; }

  size_t branch_count() const { return space_.branches.size(); }
  const BranchChoice& branch(size_t b) const { return space_.branches.at(b); }
  const BranchSpace& space() const { return space_; }
  size_t largest() const { return largest_; }    // most MACs
  size_t smallest() const { return smallest_; }  // fewest MACs among branches without early exit
  int64_t branch_macs(size_t b) const { return macs_.at(b); }

  // the shared backbone ("base"): its weights are the widest branch's
  Backbone& base() { return *backbone_; }
  // the backbone's channel groups, whose importance order makes a width slice a pruning
  virtual std::vector<compress::ChannelGroup> channel_groups() const = 0;
  std::string describe() const override;
  // the shared backbone's blocks and slots, named as this module holds them ("base.stages.1.0")
  std::vector<std::vector<BlockSlots>> stages() const override;
  // {"arch": "supernet", "base": the backbone's spec, the branch space's lists, "training": extra}
  std::string spec_json() const override;
  // the branch's physical architecture (models/: ResNetSpec or MobileNetV2Spec JSON)
  std::string branch_spec_json(size_t b) const { return branch_specs_.at(b); }
  // the branch as a plain network: channels removed, its own BN statistics
  BranchModel materialize(size_t b) const;
  // the same, built and loaded as a module in eval mode
  std::shared_ptr<Backbone> physical(size_t b) const;
  // running_mean / running_var of a branch, by the materialized BN names
  void set_branch_bn_stats(size_t b, const compress::StateDict& stats);
  // copies the shared BN scales and shifts, sliced, into every branch's private ones (after the
  // shared weights were loaded or initialised)
  void reset_private_bn();
  // the family's own exit heads restart from the trunk's weights (ResNet exit blocks)
  virtual void reset_exit_blocks() {}
  // fits every early-exit classifier (the linear layer) on the pooled features of the exit branch's
  // trunk (its own BN statistics) for `images` (normalized NCHW): ridge regression of the largest
  // branch's logits, then, given labels, `steps` of full-batch training of the head alone on (1 -
  // distill_weight) x cross-entropy + distill_weight x the largest branch's soft answers
  void fit_exit_heads(const torch::Tensor& images, const torch::Tensor& labels = {},
                      double distill_weight = 0.5, int64_t steps = 300);

  void set_extra_json(const std::string& json) { extra_json_ = json; }
  // parameters, buffers and per-branch BN statistics ("bnstats.<branch>.<name>")
  compress::StateDict full_state() const;
  void load_full_state(const compress::StateDict& state, const std::string& origin);

 protected:
  MultiBranchNetwork(std::shared_ptr<Backbone> base, BranchSpace space, int64_t height,
                     int64_t width);

  // pooled features of branch b's trunk; with `stages`, also the output of every stage it runs
  virtual torch::Tensor trunk(size_t b, const torch::Tensor& x,
                              std::vector<torch::Tensor>* stages) = 0;
  // the logits of early exit `e` for the output of its exit stage (pool + linear by default)
  virtual torch::Tensor exit_head(size_t e, const torch::Tensor& stage_output);
  // a tensor a family keeps apart from the shared backbone (operator variants); undefined: none
  virtual torch::Tensor variant_source(size_t, const std::string&) const { return {}; }
  // t (a source tensor of `name`) cut to `shape` the way branch b cuts it: leading channels
  virtual torch::Tensor select(size_t b, const std::string& name, torch::Tensor t,
                               const std::vector<int64_t>& shape) const;

  // the derived constructor's steps, in order: the branches' physical specs (shapes and MACs
  // from the networks they build), the exits' linear heads, the private BN of every full-depth
  // branch (an early exit shares its trunk's), then the sandwich's extremes
  void set_branch_specs(std::vector<std::string> specs, int64_t in_channels);
  void add_linear_exit_heads(int64_t classes);
  void add_private_bn();
  void pick_extremes();

  torch::Tensor source(size_t b, const std::string& name) const;
  torch::Tensor tensor(size_t b, const std::string& name) const;  // source sliced to shape
  torch::Tensor batch_norm(size_t b, const std::string& name, const torch::Tensor& x);

  std::shared_ptr<Backbone> backbone_;
  BranchSpace space_;
  int64_t height_ = 0, width_ = 0;
  std::vector<std::string> branch_specs_;                            // per branch
  std::vector<std::map<std::string, std::vector<int64_t>>> shapes_;  // per branch
  std::vector<int64_t> macs_;
  std::vector<compress::StateDict> bn_stats_;   // per branch
  std::vector<compress::StateDict> bn_params_;  // per branch: private BN weight and bias
  std::vector<std::vector<size_t>> exits_of_;   // per full-depth branch, its early exits
  // tensor handles by name (weights are loaded in place, so the handles stay valid)
  std::map<std::string, torch::Tensor> base_tensors_;
  // early-exit heads, by branch and physical name ("fc.weight", and a family's exit block)
  std::map<size_t, std::map<std::string, torch::Tensor>> exit_tensors_;
  size_t largest_ = 0, smallest_ = 0, active_ = 0;
  std::string extra_json_;
};

// named parameters and buffers of a module, by name
std::map<std::string, torch::Tensor> named_tensors(const torch::nn::Module& m);
// a registered module or parameter name (no dots) for a text
std::string registered_name(const std::string& text);

// whether a spec JSON describes a multi-branch network
bool is_multi_branch_spec(const std::string& spec_json);
// the multi-branch network a checkpoint's spec describes, of either family, weights unset;
// throws ConfigError on a malformed spec
std::shared_ptr<MultiBranchNetwork> multi_branch_from_spec(const std::string& spec_json);
// the multi-branch network a config describes ([model] and [supernet], checked), for inputs of
// `channels` x height x width and `classes` classes; throws ConfigError naming the culprit
std::shared_ptr<MultiBranchNetwork> multi_branch_from_config(const TrainConfig& config,
                                                             int64_t channels, int64_t height,
                                                             int64_t width, int64_t classes);

}  // namespace adascale::trainer
