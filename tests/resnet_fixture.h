// a small random ResNet for compress/export tests: non-trivial BatchNorm statistics and scales,
// so mistakes in folding or channel bookkeeping show in the outputs
#pragma once

#include <torch/torch.h>

#include "trainer/checkpoint.h"
#include "models/resnet_compression.h"

namespace adascale::testing {

inline trainer::CompressedResNet random_resnet(uint64_t seed, int64_t stem,
                                               std::vector<int64_t> widths,
                                               std::vector<int64_t> depths, int64_t classes) {
  torch::manual_seed(seed);
  trainer::ModelConfig c;
  c.stem_width = stem;
  c.widths = widths;
  c.depths = depths;
  trainer::ResNet net(trainer::ResNetSpec::from_config(c, 1, classes));
  torch::NoGradGuard no_grad;
  for (auto& b : net.named_buffers())
    if (b.key().find("running_var") != std::string::npos)
      b.value().uniform_(0.5, 2.0);
    else if (b.key().find("running_mean") != std::string::npos)
      b.value().normal_(0, 0.2);
  for (auto& p : net.named_parameters())
    if (p.key().find("bn") != std::string::npos) p.value().uniform_(0.5, 1.5);
  return {net.spec(), trainer::module_state(net)};
}

}  // namespace adascale::testing
