// The named state of a module (parameters and buffers by name), as checkpoints and compressed
// variants carry it. Loading is strict: every name and shape must match exactly, so a state that
// belongs to another architecture is refused by name instead of loading half.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "base/error.h"

namespace adascale::trainer {

using CheckpointError = ::adascale::CheckpointError;

// copies the module's parameters and buffers into a name->tensor map (detached, contiguous, cpu)
std::map<std::string, torch::Tensor> module_state(const torch::nn::Module& module);
// loads a name->tensor map into the module; throws CheckpointError naming origin and tensor
void load_module_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state,
                       const std::string& origin);

}  // namespace adascale::trainer
