// ModelConfig: the [model] section of a training config, the architecture of a backbone.
// Kept apart from the rest of the config so that models/ does not depend on the trainer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/strings.h"

namespace adascale::trainer {

using ConfigError = ::adascale::ConfigError;
using base::join_int_list;
using base::parse_int_list;

struct ModelConfig {
  std::string arch = "resnet";  // resnet | mobilenetv2
  int64_t stem_width = 16;
  std::vector<int64_t> widths{16, 32, 64};  // per stage
  std::vector<int64_t> depths{2, 2, 2};     // blocks per stage
  int64_t expansion = 6;                    // mobilenetv2 inverted-residual expansion
  // a checkpoint to start from (its architecture and weights), e.g. to fine-tune a compressed
  // model; empty: random initialisation
  std::string init;
};

}  // namespace adascale::trainer
