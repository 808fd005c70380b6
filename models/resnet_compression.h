// Physical compression of a trained ResNet: each function returns a smaller ResNet (spec + state)
// computing an approximation of the input one.
//   prune_resnet       structured channel pruning, keeping a fraction of every channel group
//                      (residual chains pruned jointly), ranked by filter L1
//                      (compress/channel_pruning.h)
//   lowrank_resnet     each 3x3 conv of the given stages -> spatial rank-r pair, r = fraction x
//                      full rank, from the SVD of the trained weight (compress/low_rank.h)
//   substitute_resnet  each 3x3 conv of the given stages -> depthwise-separable / fire variant,
//                      fitted to the replaced conv by layer-wise distillation on calibration images
// The operator grammar that chains them (`adascale compress --ops`, the branch space's ops) is
// supernet/operator.h.
#pragma once

#include <torch/torch.h>

#include <ostream>
#include <string>
#include <vector>

#include "compress/channel_pruning.h"
#include "compress/distillation.h"
#include "models/resnet.h"

namespace adascale::trainer {

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
}  // namespace adascale::trainer
