// The device a run trains on (train.device): the CPU, or a CUDA device of a CUDA-enabled
// LibTorch (users point CMAKE_PREFIX_PATH at one; Debian's is CPU-only). Model, optimizer state
// and batches move there; checkpoints, calibration and the exported branches stay on the CPU.
#pragma once

#include <torch/torch.h>

#include <string>

#include "trainer/config.h"

namespace adascale::trainer {

// whether this build was configured against a CUDA-enabled LibTorch
bool built_with_cuda();

// train.device resolved: "cuda" is cuda:LOCAL_RANK with ranks (cuda:0 without); a ConfigError
// naming the key when no such device exists here
torch::Device training_device(const TrainConfig& config, int local_rank);

// the optimizer's per-parameter state (momentum, Adam moments) on `device`, after it was
// deserialized from a checkpoint (which holds it on the CPU)
void move_optimizer_state(torch::optim::Optimizer& optimizer, const torch::Device& device);

// a batch on the device: pinned host memory and an asynchronous copy for CUDA
torch::Tensor to_device(const torch::Tensor& t, const torch::Device& device);

}  // namespace adascale::trainer
