// Lowering of the (possibly compressed) models of models/ into the runtime's branch IR: a ResNet
// (basic blocks, every convolution-slot variant) and a MobileNetV2 (inverted residuals: 1x1
// expansion, 3x3 depthwise and stem with ReLU6, linear 1x1 projection, residual additions).
//
// Every BatchNorm is folded into the convolution before it (w' = w * g / sqrt(v + eps),
// b' = beta - mean * g / sqrt(v + eps)); weights are written in the runtime's OHWI layout; ReLUs
// are fused into the convolution or residual add that precedes them. Tensors are stored once per
// bundle: a tensor identical to one another branch already stored is shared by name.
//
// With weight sharing on (the default), convolution and classifier weights are stored unfolded and
// the fold happens when the runtime prepares the branch (weight_mul, runtime/graph.h): branches
// of a multi-branch network differ in their BatchNorm, not in their weights, and a narrower
// branch's weight is the leading slice of a wider one's (importance-ordered channels), stored
// once and referenced with weight_slice. Only the per-branch scales and biases are extra.
#pragma once

#include <map>
#include <string>

#include "compress/channel_pruning.h"
#include "models/mobilenetv2.h"
#include "models/resnet.h"
#include "runtime/bundle.h"

namespace adascale::exporter {

class TensorStore {
 public:
  explicit TensorStore(BundleWriter& writer, bool share_slices = true)
      : writer_(writer), share_slices_(share_slices) {}
  // adds a tensor (already in runtime layout; int8 and int32 kept, anything else stored as
  // float32) unless identical bytes of the same dtype and shape are stored already; returns the
  // name it is stored under
  std::string add(const std::string& name, const torch::Tensor& tensor);
  size_t shared_hits() const { return shared_hits_; }

  // a float weight [rows, ..., cols] in runtime layout: stored, or found as a [rows, ..., cols]
  // slice of a stored weight of the same inner dims, each of its two axes the leading entries or
  // the leading ones of each half (a narrower fire's channels); keep is that [rows, cols] (empty
  // when the stored tensor is used whole) and halves says which axes are cut by halves
  struct SharedWeight {
    std::string name;
    std::vector<int64_t> keep;
    std::vector<int64_t> halves;  // [R, C] of 0 or 1, empty when both axes are leading
  };
  SharedWeight add_weight(const std::string& name, const torch::Tensor& weight);
  bool shares_slices() const { return share_slices_; }
  size_t slice_hits() const { return slice_hits_; }

 private:
  BundleWriter& writer_;
  bool share_slices_ = true;
  std::multimap<uint32_t, std::string> by_crc_;
  std::vector<std::string> weights_;  // candidates for slicing
  size_t shared_hits_ = 0, slice_hits_ = 0;
};

// builds the branch (input "input" NHWC, output "logits") and stores its tensors
Branch lower_resnet(const trainer::ResNetSpec& spec, const compress::StateDict& state,
                    const std::string& branch_name, TensorStore& store);

Branch lower_mobilenetv2(const trainer::MobileNetV2Spec& spec, const compress::StateDict& state,
                         const std::string& branch_name, TensorStore& store);

// the model a spec JSON names (models/: resnet or mobilenetv2), lowered; throws ConfigError for
// another architecture
Branch lower_model(const std::string& spec_json, const compress::StateDict& state,
                   const std::string& branch_name, TensorStore& store);
// the same model in LibTorch, weights loaded, in eval mode: what the branch is checked against
std::shared_ptr<trainer::Backbone> build_model(const std::string& spec_json,
                                               const compress::StateDict& state,
                                               const std::string& branch_name);

}  // namespace adascale::exporter
