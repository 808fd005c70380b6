// Backbones written with LibTorch's C++ modules, for small inputs (28x28, 32x32):
//  - ResNet (models/resnet.h): 3x3 stem, stages of basic residual blocks (two 3x3 convs),
//    stride 2 between stages, global average pool, linear classifier;
//  - MobileNetV2 (models/mobilenetv2.h): 3x3 stem, stages of inverted residual blocks (1x1
//    expand, 3x3 depthwise, 1x1 project), global average pool, linear classifier.
// Stage widths and depths come from ModelConfig, or from a spec (JSON) for compressed variants.
// Parameter names are stable ("stem.conv.weight", "stages.1.0.conv1.weight", ...): checkpoints and
// the exporter rely on them.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "models/model_config.h"

namespace adascale::trainer {

// A block of a backbone by module name ("stages.1.0") and its convolution slots, the convolutions
// compression operators replace and the exporter lowers ("stages.1.0.conv1" in a ResNet,
// "stages.1.0.expand" / ".depthwise" / ".project" in a MobileNetV2).
struct BlockSlots {
  std::string name;
  std::vector<std::string> conv_slots;
};

class Backbone : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // the blocks of every stage, in order: what code that walks a backbone uses instead of casting
  // it to its concrete type
  virtual std::vector<std::vector<BlockSlots>> stages() const = 0;
  // a block's or slot's module by name; throws ConfigError naming it when absent
  std::shared_ptr<torch::nn::Module> module_named(const std::string& name) const;
  // a short human-readable summary: "resnet stem16 widths16,32,64 depths2,2,2"
  virtual std::string describe() const = 0;
  // a JSON description that rebuilds the exact architecture (compressed variants included);
  // empty for architectures that the config alone describes
  virtual std::string spec_json() const { return ""; }
};

std::shared_ptr<Backbone> make_backbone(const ModelConfig& config, int64_t in_channels,
                                        int64_t num_classes);
// the model of a checkpoint: from its spec when it has one (compressed variants), else the config
std::shared_ptr<Backbone> make_backbone(const ModelConfig& config, const std::string& spec_json,
                                        int64_t in_channels, int64_t num_classes);

// the model a spec JSON describes (either family), checked, weights initialised; throws
// ConfigError naming a malformed spec or an unknown architecture
std::shared_ptr<Backbone> backbone_from_spec(const std::string& spec_json);

struct ModelCost {
  int64_t params = 0;
  int64_t macs = 0;  // multiply-accumulates for one image
};
// counts parameters, and the conv/linear MACs of one forward pass of a single image
ModelCost measure_cost(Backbone& model, int64_t channels, int64_t height, int64_t width);
// median batch-1 latency of `image` through the model in LibTorch eager mode, one intra-op thread,
// after 10 warm-up runs (the comparison point of the runtime's own latencies)
double median_latency_ms(Backbone& model, const torch::Tensor& image, int64_t runs);

}  // namespace adascale::trainer
