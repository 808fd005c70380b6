// Compression of a trained ResNet into a physically smaller one, by an ordered list of operators:
//   prune:F       structured channel pruning, keeping fraction F of every channel group
//                 (residual chains pruned jointly), ranked by filter L1
//                 (compress/channel_pruning.h)
//   lowrank:F     each 3x3 conv of the chosen stages -> spatial rank-r pair, r = F x full rank,
//                 from the SVD of the trained weight (compress/low_rank.h)
//   dpconv, fire  each 3x3 conv of the chosen stages -> depthwise-separable / fire variant,
//                 fitted to the replaced conv by layer-wise distillation on calibration images
// A stage list may follow an operator: "dpconv@2/3" (stages counted from 1; default: all stages
// for prune, the last two stages for the others, as in the reference operator set).
// Operators apply left to right; pruning needs plain convolutions, so it comes first. The ops text
// in canonical form ("prune0.50>lowrank0.25@3") names the result.
#pragma once

#include <torch/torch.h>

#include <ostream>
#include <string>
#include <vector>

#include "compress/channel_pruning.h"
#include "compress/distillation.h"
#include "trainer/resnet.h"

namespace adascale::trainer {

struct CompressOp {
  std::string kind;             // prune | lowrank | dpconv | fire
  double amount = 0.0;          // prune: keep fraction; lowrank: rank fraction; fire: squeeze ratio
  std::vector<int64_t> stages;  // 0-based; empty = the operator's default
  std::string canonical() const;
};

// throws ConfigError naming the offending operator
std::vector<CompressOp> parse_compress_ops(const std::string& text);
std::string canonical_ops_name(const std::vector<CompressOp>& ops);

struct CompressedResNet {
  ResNetSpec spec;
  compress::StateDict state;
};

std::vector<compress::ChannelGroup> resnet_channel_groups(const ResNetSpec& spec);
CompressedResNet prune_resnet(const CompressedResNet& model, double keep_fraction,
                              compress::Importance importance = compress::Importance::kFilterL1);
CompressedResNet lowrank_resnet(const CompressedResNet& model, double rank_fraction,
                                const std::vector<int64_t>& stages);
// dpconv or fire; calibration: normalized images [N, C, H, W]
CompressedResNet substitute_resnet(const CompressedResNet& model, const std::string& kind,
                                   double squeeze_ratio, const std::vector<int64_t>& stages,
                                   const torch::Tensor& calibration,
                                   const compress::DistillOptions& options, std::ostream* log);
CompressedResNet apply_compress_ops(const CompressedResNet& model,
                                    const std::vector<CompressOp>& ops,
                                    const torch::Tensor& calibration, std::ostream* log);

}  // namespace adascale::trainer
