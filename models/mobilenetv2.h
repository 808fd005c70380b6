// MobileNetV2 described by a MobileNetV2Spec: the network the config describes and every
// physically compressed variant of it (fewer expansion channels) are the same module type with a
// different spec, as ResNet is with ResNetSpec, so checkpoints, evaluation and the exporter
// handle them alike.
//
// Layout: stem (3x3 conv, BN, ReLU6) -> stages of inverted residual blocks -> global average
// pool -> linear. A block maps in -> hidden (1x1 expand, BN, ReLU6; absent when the block does
// not expand, hidden = in) -> hidden (3x3 depthwise with the block's stride, BN, ReLU6) -> out
// (1x1 linear projection, BN, no activation), and adds its input when the stride is 1 and
// in = out. Module names are stable ("stages.1.0.expand.conv.weight", ".depthwise", ".project").
// A low-rank factored 1x1 (compress lowrank) adds a "reduce" 1x1 before it
// ("stages.1.0.project.reduce.weight", in -> rank, no BN), whose outputs its conv reads.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/backbone.h"

namespace adascale::trainer {

struct InvertedResidualSpec {
  int64_t in = 0, hidden = 0, out = 0, stride = 1;
  bool expand = true;  // false: no 1x1 expansion, hidden = in
  // low-rank factors of the 1x1 convolutions: a 1x1 "reduce" to this many channels before the
  // expansion's or projection's own 1x1 (which then reads them); 0: not factored
  int64_t expand_rank = 0, project_rank = 0;
  bool residual() const { return stride == 1 && in == out; }
};

struct MobileNetV2Spec {
  int64_t in_channels = 1;
  int64_t stem = 16;
  int64_t classes = 10;
  std::vector<std::vector<InvertedResidualSpec>> stages;

  // stride 2 at the first block of every stage but the first; the first stage does not expand
  static MobileNetV2Spec from_config(const ModelConfig& config, int64_t in_channels,
                                     int64_t classes);
  std::string to_json() const;  // {"arch": "mobilenetv2", ...}
  // throws ConfigError on malformed text, another architecture or an inconsistent network
  static MobileNetV2Spec from_json(const std::string& text);
  // throws ConfigError naming the block; also when the network would hold more than
  // kMaxParameters weights (a spec read from a file must not make the loader allocate gigabytes)
  void validate() const;
  int64_t parameters() const;  // weights, BatchNorm and classifier; of a valid spec
  static constexpr int64_t kMaxParameters = int64_t{1} << 28;
  std::string describe() const;
};

class MobileNetV2 : public Backbone {
 public:
  explicit MobileNetV2(MobileNetV2Spec spec);
  torch::Tensor forward(torch::Tensor x) override;
  std::string describe() const override { return spec_.describe(); }
  std::string spec_json() const override { return spec_.to_json(); }
  const MobileNetV2Spec& spec() const { return spec_; }
  std::vector<std::vector<BlockSlots>> stages() const override;

 private:
  MobileNetV2Spec spec_;
  std::shared_ptr<torch::nn::Module> stem_;
  torch::nn::ModuleList stages_{nullptr};
  torch::nn::Linear fc_{nullptr};
};

// the architecture a spec JSON names ("resnet", "mobilenetv2", "supernet"); "" when it names none
std::string spec_architecture(const std::string& spec_json);

}  // namespace adascale::trainer
