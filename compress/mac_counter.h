// MacCounter: counts the multiply-accumulates of the convolutions and linear layers that run
// through conv_forward / linear_forward while a counter is alive on this thread. Models call these
// two functions instead of module->forward so that measure_cost needs no forward hooks (LibTorch
// has none). conv_forward also puts tensors in the memory order that trains fastest (below).
#pragma once

#include <torch/torch.h>

namespace adascale::compress {

torch::Tensor conv_forward(torch::nn::Conv2dImpl& conv, const torch::Tensor& x);
// Memory order around a convolution. oneDNN convolutions run channels-last (NHWC) natively and
// reorder NCHW to a blocked layout and back on every call (a training step 1.3-1.4x slower at
// our sizes), so conv_input puts a convolution's input in NHWC. LibTorch's channels-last BatchNorm,
// though, is 2-11x slower than NCHW unless the channel count is a multiple of 16 (4, 8, 12
// channels: our narrow branches), so conv_output hands a convolution's output to the BatchNorm
// after it in NHWC for multiples of 16 and in NCHW otherwise (docs/benchmarks.md).
// kNchw leaves every tensor as it comes (LibTorch's default; the baseline of the benchmark).
torch::Tensor conv_input(const torch::Tensor& x);
torch::Tensor conv_output(const torch::Tensor& y);
enum class ConvMemoryOrder { kTuned, kNchw };
void set_conv_memory_order(ConvMemoryOrder order);  // process-wide, kTuned unless set
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
