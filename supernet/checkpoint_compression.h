// compress_checkpoint: `adascale compress` as a function. Reads a trained ResNet checkpoint,
// applies the operators (supernet/operator.h) with calibration images from its training split,
// recalibrates BatchNorm, measures test accuracy and cost before and after, writes the compressed
// checkpoint (atomically), and optionally fine-tunes it with the original recipe at a lower rate.
#pragma once

#include <ostream>
#include <string>

#include "models/backbone.h"

namespace adascale::trainer {

struct CompressionRequest {
  std::string checkpoint;      // input
  std::string ops;             // operator list, e.g. "prune:0.5,lowrank:0.25@3"
  std::string out;             // output checkpoint
  int64_t calibration = 1024;  // calibration images (>= 16)
  int64_t finetune_epochs = 0;
  double finetune_lr = 0.0;  // 0: a tenth of the checkpoint's training rate
  int threads = 2;
};

struct CompressionOutcome {
  ModelCost before, after;
  double before_accuracy = 0, after_accuracy = 0;  // test split, fraction
  std::string architecture;                        // of the result
};

// throws ConfigError on a bad operator list or a checkpoint that is not a ResNet
CompressionOutcome compress_checkpoint(const CompressionRequest& request, std::ostream& log);

}  // namespace adascale::trainer
