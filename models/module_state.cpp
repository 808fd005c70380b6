#include "models/module_state.h"

namespace adascale::trainer {

std::map<std::string, torch::Tensor> module_state(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : module.named_parameters())
    out[p.key()] = p.value().detach().to(torch::kCPU).contiguous().clone();
  for (const auto& b : module.named_buffers())
    out[b.key()] = b.value().detach().to(torch::kCPU).contiguous().clone();
  return out;
}

void load_module_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state,
                       const std::string& origin) {
  torch::NoGradGuard no_grad;
  size_t used = 0;
  auto load = [&](const std::string& name, torch::Tensor& target) {
    auto it = state.find(name);
    if (it == state.end())
      throw CheckpointError(origin + ": no tensor '" + name +
                            "' (checkpoint of another architecture?)");
    if (it->second.sizes() != target.sizes())
      throw CheckpointError(origin + ": tensor '" + name + "' has shape " +
                            c10::str(it->second.sizes()) + ", the model expects " +
                            c10::str(target.sizes()));
    target.copy_(it->second.to(target.dtype()));
    ++used;
  };
  for (auto& p : module.named_parameters()) load(p.key(), p.value());
  for (auto& b : module.named_buffers()) load(b.key(), b.value());
  if (used != state.size())
    throw CheckpointError(origin + ": holds " + std::to_string(state.size() - used) +
                          " tensors the model does not have (checkpoint of another architecture?)");
}

}  // namespace adascale::trainer
