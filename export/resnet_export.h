// Lowering of a (possibly compressed) ResNet into the runtime's branch IR.
//
// Every BatchNorm is folded into the convolution before it (w' = w * g / sqrt(v + eps),
// b' = beta - mean * g / sqrt(v + eps)); weights are written in the runtime's OHWI layout; ReLUs
// are fused into the convolution or residual add that precedes them. Tensors are stored once per
// bundle: a folded weight identical to one another branch already stored is shared by name.
#pragma once

#include <map>
#include <string>

#include "compress/channel_pruning.h"
#include "runtime/bundle.h"
#include "trainer/resnet.h"

namespace adascale::exporter {

class TensorStore {
 public:
  explicit TensorStore(BundleWriter& writer) : writer_(writer) {}
  // adds a tensor (already in runtime layout; int8 and int32 kept, anything else stored as
  // float32) unless identical bytes of the same dtype and shape are stored already; returns the
  // name it is stored under
  std::string add(const std::string& name, const torch::Tensor& tensor);
  size_t shared_hits() const { return shared_hits_; }

 private:
  BundleWriter& writer_;
  std::multimap<uint32_t, std::string> by_crc_;
  size_t shared_hits_ = 0;
};

// builds the branch (input "input" NHWC, output "logits") and stores its tensors
Branch lower_resnet(const trainer::ResNetSpec& spec, const compress::StateDict& state,
                    const std::string& branch_name, TensorStore& store);

}  // namespace adascale::exporter
