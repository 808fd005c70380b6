// Operators: one grammar for the branch space ([supernet] ops) and `adascale compress --ops`.
//
//   conv         the plain 3x3 convolution (branch spaces: the operator that changes nothing)
//   prune F      structured channel pruning keeping fraction F (compress only: a branch space
//                varies width instead, which is the same slicing)
//   lowrank F    each 3x3 conv -> a spatial rank-r pair, r = F x full rank (SVD)
//   dpconv       each 3x3 conv -> depthwise-separable, fitted by layer-wise distillation
//   fire [F]     each 3x3 conv -> fire module squeezing to F of the outputs (default 0.25)
//
// Written KIND, KIND F without a space, or KIND:F ("lowrank0.5", "lowrank:0.5"), optionally
// followed by @S/S... (stages counted from 1; default: every stage for prune, the last two for
// the others; a ResNet's prune takes no stages, a MobileNetV2's prunes the listed stages' blocks).
// The canonical spelling has two decimals and omits fire's default ratio: "lowrank0.50@2/3",
// "prune0.50", "dpconv", "fire". Branch names and checkpoint lineages use it.
#pragma once

#include <torch/torch.h>

#include <ostream>
#include <string>
#include <vector>

#include "models/resnet_compression.h"

namespace adascale::trainer {

enum class OperatorKind { kConv, kPrune, kLowRank, kDpConv, kFire };

struct Operator {
  OperatorKind kind = OperatorKind::kConv;
  double amount = 0.0;          // prune: keep fraction; lowrank: rank fraction; fire: squeeze
  std::vector<int64_t> stages;  // 0-based; empty: the operator's default
  // "conv", "prune", "lowrank", "dpconv", "fire": the convolution-slot kind of compress/
  const char* kind_name() const;
  std::string name() const;       // kind and amount, canonical: "lowrank0.50"
  std::string canonical() const;  // name() and the stages: "lowrank0.50@2/3"
  bool same_variant(const Operator& o) const { return name() == o.name(); }
};

constexpr double kFireDefaultSqueeze = 0.25;  // SqueezeNet's ratio

// one operator; `where` names the source in errors ("config key 'supernet.ops'", "--ops")
Operator parse_operator(const std::string& text, const std::string& where);

// `adascale compress --ops`: a comma-separated list, applied left to right; pruning must come
// first (it needs plain convolutions) and conv is not an operation. Throws ConfigError.
std::vector<Operator> parse_compress_ops(const std::string& text);
std::string canonical_ops_name(const std::vector<Operator>& ops);  // "prune0.50>lowrank0.25@3"

// throws ConfigError (prefixed by `where`) for an operator a ResNet cannot take: a prune with
// stages (residual chains cross stages, so a ResNet is pruned whole)
void check_resnet_operators(const std::vector<Operator>& ops, const std::string& where);

// the stages an operator applies to in a network of `stage_count` stages
std::vector<int64_t> operator_stages(const Operator& op, size_t stage_count);

// applies the operators to a trained ResNet, left to right; calibration: normalized images
// [N, C, H, W] for the distilled substitutions
CompressedResNet apply_operators(const CompressedResNet& model, const std::vector<Operator>& ops,
                                 const torch::Tensor& calibration, std::ostream* log);

}  // namespace adascale::trainer
