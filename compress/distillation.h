// Layer-wise distillation: fits a replacement layer (DpConv, FireConv, ...) to reproduce the
// outputs of the layer it replaces on captured inputs, so a substituted network starts close to
// the trained one instead of from scratch.
#pragma once

#include <torch/torch.h>

namespace adascale::compress {

struct DistillOptions {
  int64_t steps = 300;
  int64_t batch_size = 64;
  double lr = 3e-3;  // Adam
  uint64_t seed = 1;
};

// minimises mean squared error between forward_conv_slot(student, inputs[i]) and targets[i];
// returns the final relative error ||y - t||^2 / ||t||^2 over all pairs (eval mode)
double distill_slot(torch::nn::Module& student, const torch::Tensor& inputs,
                    const torch::Tensor& targets, const DistillOptions& options);

}  // namespace adascale::compress
