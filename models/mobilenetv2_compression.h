// Physical compression of a trained MobileNetV2: pruning of the expansion channels, and low-rank
// factors of the 1x1 convolutions. Every
// expanding block's hidden channels are one channel group (the 1x1 expansion's filters and BN,
// the depthwise filters and BN, the projection's inputs), ranked by the expansion's filter L1
// (compress/channel_pruning.h) and cut to a fraction; the block's input and output channels,
// which residual additions tie across blocks, are untouched. A block without an expansion has no
// channels of its own to prune.
#pragma once

#include <vector>

#include "compress/channel_pruning.h"
#include "models/mobilenetv2.h"

namespace adascale::trainer {

struct CompressedMobileNetV2 {
  MobileNetV2Spec spec;
  compress::StateDict state;
};

// the expansion channels of each expanding block of `stages` (0-based; empty: every stage)
std::vector<compress::ChannelGroup> mobilenetv2_expansion_groups(
    const MobileNetV2Spec& spec, const std::vector<int64_t>& stages = {});

// every channel group of the network: the stem's channels and each residual chain's (the outputs
// of the blocks that add into one another, with the depthwise filters of a block that does not
// expand), then the expansion groups; ordering each by importance makes a width slice a pruning
std::vector<compress::ChannelGroup> mobilenetv2_channel_groups(const MobileNetV2Spec& spec);

// keeps max(1, round(keep_fraction x hidden)) channels of every group; the spec follows
CompressedMobileNetV2 prune_mobilenetv2(
    const CompressedMobileNetV2& model, double keep_fraction, const std::vector<int64_t>& stages,
    compress::Importance importance = compress::Importance::kFilterL1);

// low-rank factors of the 1x1 expansion and projection of every block of `stages` (0-based;
// empty: every stage), from their SVD: W (out x in) = U S V^T cut to rank max(1, round(F x
// min(in, out))), a 1x1 reduce sqrt(S) V^T (in -> rank) then the layer's own 1x1 U sqrt(S) (rank
// -> out, its BN kept). Throws ConfigError naming a layer that is factored already.
// the rank lowrank_mobilenetv2 gives a 1x1 of `in` -> `out` channels at `rank_fraction`
int64_t pointwise_rank(double rank_fraction, int64_t in, int64_t out);

CompressedMobileNetV2 lowrank_mobilenetv2(const CompressedMobileNetV2& model, double rank_fraction,
                                          const std::vector<int64_t>& stages);

}  // namespace adascale::trainer
