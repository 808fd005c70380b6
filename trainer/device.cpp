#include "trainer/device.h"

#include "base/error.h"

namespace adascale::trainer {

bool built_with_cuda() {
#ifdef ADASCALE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

torch::Device training_device(const TrainConfig& config, int local_rank) {
  const std::string& d = config.train.device;
  if (d.empty() || d == "cpu") return torch::kCPU;
  const int index = d == "cuda" ? local_rank : std::stoi(d.substr(5));
  if (!torch::cuda::is_available())
    throw ConfigError("train.device = " + d + ": " +
                      (built_with_cuda()
                           ? std::string("no CUDA device is visible to LibTorch here")
                           : std::string("this build's LibTorch has no CUDA (configure with "
                                         "CMAKE_PREFIX_PATH at a CUDA-enabled LibTorch)")));
  const auto count = static_cast<int>(torch::cuda::device_count());
  if (index >= count)
    throw ConfigError("train.device = " + d + ": device " + std::to_string(index) +
                      " does not exist (" + std::to_string(count) + " CUDA devices)");
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(index)};
}

void move_optimizer_state(torch::optim::Optimizer& optimizer, const torch::Device& device) {
  if (device.is_cpu()) return;
  for (auto& [key, state] : optimizer.state()) {
    if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(state.get())) {
      if (sgd->momentum_buffer().defined()) sgd->momentum_buffer(sgd->momentum_buffer().to(device));
    } else if (auto* adam = dynamic_cast<torch::optim::AdamWParamState*>(state.get())) {
      adam->exp_avg(adam->exp_avg().to(device));
      adam->exp_avg_sq(adam->exp_avg_sq().to(device));
      if (adam->max_exp_avg_sq().defined()) adam->max_exp_avg_sq(adam->max_exp_avg_sq().to(device));
    }
  }
}

torch::Tensor to_device(const torch::Tensor& t, const torch::Device& device) {
  if (device.is_cpu()) return t;
  return (t.is_pinned() ? t : t.pin_memory()).to(device, /*non_blocking=*/true);
}

}  // namespace adascale::trainer
