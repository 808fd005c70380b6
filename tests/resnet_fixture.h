// small random ResNets and MobileNetV2s for compress/export tests: non-trivial BatchNorm statistics
// and scales, so mistakes in folding or channel bookkeeping show in the outputs
#pragma once

#include <torch/torch.h>

#include "models/mobilenetv2_compression.h"
#include "models/module_state.h"
#include "models/resnet_compression.h"
#include "trainer/checkpoint.h"

namespace adascale::testing {

// non-trivial BatchNorm statistics and scales (bn scales in [0.5, 1.5])
inline void randomize_batchnorm(torch::nn::Module& net) {
  torch::NoGradGuard no_grad;
  for (auto& b : net.named_buffers())
    if (b.key().find("running_var") != std::string::npos)
      b.value().uniform_(0.5, 2.0);
    else if (b.key().find("running_mean") != std::string::npos)
      b.value().normal_(0, 0.2);
  for (auto& p : net.named_parameters())
    if (p.key().find("bn") != std::string::npos) p.value().uniform_(0.5, 1.5);
}

// stages of 8/16/24 channels, expansion 4 (the first stage does not expand), 3 input channels
inline trainer::CompressedMobileNetV2 random_mobilenetv2(uint64_t seed, int64_t in_channels,
                                                         std::vector<int64_t> depths,
                                                         int64_t classes) {
  torch::manual_seed(seed);
  trainer::ModelConfig c;
  c.arch = "mobilenetv2";
  c.stem_width = 8;
  c.widths = {8, 16, 24};
  c.depths = depths;
  c.expansion = 4;
  trainer::MobileNetV2 net(trainer::MobileNetV2Spec::from_config(c, in_channels, classes));
  randomize_batchnorm(net);
  return {net.spec(), trainer::module_state(net)};
}

inline trainer::CompressedResNet random_resnet(uint64_t seed, int64_t stem,
                                               std::vector<int64_t> widths,
                                               std::vector<int64_t> depths, int64_t classes) {
  torch::manual_seed(seed);
  trainer::ModelConfig c;
  c.stem_width = stem;
  c.widths = widths;
  c.depths = depths;
  trainer::ResNet net(trainer::ResNetSpec::from_config(c, 1, classes));
  randomize_batchnorm(net);
  return {net.spec(), trainer::module_state(net)};
}

}  // namespace adascale::testing
