// Backbones written with LibTorch's C++ modules, for small inputs (28x28, 32x32):
//  - ResNet: 3x3 stem, stages of basic residual blocks (two 3x3 convs), stride 2 between stages,
//    global average pool, linear classifier;
//  - MobileNetV2: 3x3 stem, stages of inverted residual blocks (1x1 expand, 3x3 depthwise,
//    1x1 project), global average pool, linear classifier.
// Stage widths and depths come from ModelConfig. Parameter names are stable ("stem.conv.weight",
// "stages.1.0.conv1.weight", ...): checkpoints and the exporter rely on them.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "trainer/config.h"

namespace adascale::trainer {

class Backbone : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // a short human-readable summary: "resnet stem16 widths16,32,64 depths2,2,2"
  virtual std::string describe() const = 0;
};

std::shared_ptr<Backbone> make_backbone(const ModelConfig& config, int64_t in_channels,
                                        int64_t num_classes);

struct ModelCost {
  int64_t params = 0;
  int64_t macs = 0;  // multiply-accumulates for one image
};
// counts parameters and conv/linear MACs by running one image through forward hooks-free shapes
ModelCost measure_cost(Backbone& model, int64_t channels, int64_t height, int64_t width);

}  // namespace adascale::trainer
