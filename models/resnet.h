// ResNet described by a ResNetSpec: the plain backbone and every physically compressed variant of
// it (pruned channel counts, low-rank, depthwise-separable or fire convolutions) are the same
// module type with a different spec, so checkpoints, evaluation and the exporter handle them alike.
//
// Layout: stem (3x3 conv, BN, ReLU) -> stages of basic blocks -> global average pool -> linear.
// A block computes relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), where conv1 maps in->mid
// (with the block's stride), conv2 maps mid->out, and the shortcut is a 1x1 conv + BN when the
// stride or channel count changes, the identity otherwise.
//
// A convolution slot (conv1, conv2) is a plain conv or one of the variants of
// compress/conv_variants.h (lowrank, dpconv, fire), named "stages.S.B.convN".
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "compress/conv_variants.h"
#include "models/backbone.h"

namespace adascale::trainer {

using ConvSlotSpec = compress::ConvVariantSpec;

struct BlockSpec {
  int64_t in = 0, mid = 0, out = 0, stride = 1;
  ConvSlotSpec conv1, conv2;
  bool has_shortcut_conv() const { return stride != 1 || in != out; }
};

struct ResNetSpec {
  int64_t in_channels = 1;
  int64_t stem = 16;
  int64_t classes = 10;
  std::vector<std::vector<BlockSpec>> stages;

  static ResNetSpec from_config(const ModelConfig& config, int64_t in_channels, int64_t classes);
  std::string to_json() const;
  static ResNetSpec from_json(const std::string& text);  // throws ConfigError on malformed text
  // throws ConfigError; also beyond 2^16 channels (ranks, squeezes: 3 x 2^16) per layer, 1,024
  // blocks or about 2^28 parameters, so a spec read from a file cannot make the loader allocate
  // gigabytes
  void validate() const;
  std::string describe() const;
};

class ResNet : public Backbone {
 public:
  explicit ResNet(ResNetSpec spec);
  torch::Tensor forward(torch::Tensor x) override;
  // like forward, and stores the input of every convolution slot under its module name
  // ("stages.1.0.conv1") so compression operators can fit replacements layer by layer
  torch::Tensor forward_capture(torch::Tensor x, std::map<std::string, torch::Tensor>* inputs);
  std::string describe() const override { return spec_.describe(); }
  std::string spec_json() const override { return spec_.to_json(); }
  const ResNetSpec& spec() const { return spec_; }
  std::vector<std::vector<BlockSlots>> stages() const override;

 private:
  torch::Tensor run(torch::Tensor x, std::map<std::string, torch::Tensor>* capture);
  ResNetSpec spec_;
  std::shared_ptr<torch::nn::Module> stem_;
  torch::nn::ModuleList stages_{nullptr};
  torch::nn::Linear fc_{nullptr};
};

}  // namespace adascale::trainer
