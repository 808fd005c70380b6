// ChannelPruner building blocks: structured pruning that physically removes channels.
//
// A ChannelGroup is a set of channels that must be kept or removed together: the outputs of every
// layer that writes them (conv filters and the BN vectors after them, on axis 0) and the inputs of
// every layer that reads them (conv and linear weights, on axis 1). Residual additions tie the
// outputs of several layers into one group; the model code (models/resnet_compression.h) builds the
// groups from its structure, this file ranks and removes channels.
//
// Importance: by default the L1 norm of each output filter (Li et al., "Pruning Filters for
// Efficient ConvNets"), normalised per producing layer so that layers of different scale count
// alike and summed over the group's producers; alternatively the BN scale |gamma| summed the same
// way. We default to filter L1 because weight decay drives BN scales of whole layers down together,
// which makes |gamma| a poor ranking across a residual group.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace adascale::compress {

using StateDict = std::map<std::string, torch::Tensor>;

struct TensorAxis {
  std::string tensor;
  int64_t axis = 0;
};

struct ChannelGroup {
  std::string name;
  int64_t size = 0;
  std::vector<TensorAxis> producers;   // conv weights (axis 0), BN weight/bias/mean/var (axis 0)
  std::vector<TensorAxis> consumers;   // conv / linear weights (axis 1)
  std::vector<std::string> filters;    // conv weights whose output filters measure importance
  std::vector<std::string> bn_scales;  // BN weights (gamma) of the group
};

enum class Importance { kFilterL1, kBnScale };
Importance parse_importance(const std::string& text);  // "l1" | "bn"; throws invalid_argument

// one value per channel of the group, larger = more important
torch::Tensor channel_importance(const ChannelGroup& group, const StateDict& state,
                                 Importance importance);
// indices of the `keep` most important channels, ascending (stable for ties: lower index first)
std::vector<int64_t> top_channels(const torch::Tensor& importance, int64_t keep);
// indices of all channels, most important first (the order that makes a width slice a pruning)
std::vector<int64_t> importance_order(const torch::Tensor& importance);
// keeps only `channels` (in that order) on every producer and consumer axis of the group;
// throws std::invalid_argument naming the tensor when one is missing or has the wrong size
void select_channels(StateDict& state, const ChannelGroup& group,
                     const std::vector<int64_t>& channels);

}  // namespace adascale::compress
