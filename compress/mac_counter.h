// MacCounter: counts the multiply-accumulates of the convolutions and linear layers that run
// through conv_forward / linear_forward while a counter is alive on this thread. Models call these
// two functions instead of module->forward so that measure_cost needs no forward hooks (LibTorch
// has none).
#pragma once

#include <torch/torch.h>

namespace adascale::compress {

torch::Tensor conv_forward(torch::nn::Conv2dImpl& conv, const torch::Tensor& x);
torch::Tensor linear_forward(torch::nn::LinearImpl& linear, const torch::Tensor& x);

class MacCounter {
 public:
  MacCounter();
  ~MacCounter();
  MacCounter(const MacCounter&) = delete;
  MacCounter& operator=(const MacCounter&) = delete;
  // MACs counted so far, divided by the batch size of each call (MACs per image)
  int64_t macs() const { return macs_; }

 private:
  int64_t macs_ = 0;
  int64_t* previous_;
};

}  // namespace adascale::compress
