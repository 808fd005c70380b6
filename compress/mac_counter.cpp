#include "compress/mac_counter.h"

#include <atomic>

namespace adascale::compress {
namespace {
thread_local int64_t* g_macs = nullptr;
}

MacCounter::MacCounter() : previous_(g_macs) { g_macs = &macs_; }
MacCounter::~MacCounter() { g_macs = previous_; }

namespace {
std::atomic<ConvMemoryOrder> g_order{ConvMemoryOrder::kTuned};
}

void set_conv_memory_order(ConvMemoryOrder order) { g_order = order; }

torch::Tensor conv_input(const torch::Tensor& x) {
  if (x.dim() != 4 || g_order == ConvMemoryOrder::kNchw) return x;
  return x.contiguous(at::MemoryFormat::ChannelsLast);
}

torch::Tensor conv_output(const torch::Tensor& y) {
  if (y.dim() != 4 || g_order == ConvMemoryOrder::kNchw) return y;
  // (from a one-channel input oneDNN answers in NCHW whatever the input's order)
  return y.contiguous(y.size(1) % 16 == 0 ? at::MemoryFormat::ChannelsLast
                                          : at::MemoryFormat::Contiguous);
}

torch::Tensor conv_forward(torch::nn::Conv2dImpl& c, const torch::Tensor& x) {
  auto y = conv_output(c.forward(conv_input(x)));
  if (g_macs) {
    const auto& w = c.weight;  // [out, in/groups, kh, kw]
    *g_macs += y.numel() / y.size(0) * w.size(1) * w.size(2) * w.size(3);
  }
  return y;
}

torch::Tensor linear_forward(torch::nn::LinearImpl& l, const torch::Tensor& x) {
  auto y = l.forward(x);
  if (g_macs) *g_macs += l.weight.numel();
  return y;
}

}  // namespace adascale::compress
