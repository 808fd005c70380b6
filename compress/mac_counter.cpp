#include "compress/mac_counter.h"

namespace adascale::compress {
namespace {
thread_local int64_t* g_macs = nullptr;
}

MacCounter::MacCounter() : previous_(g_macs) { g_macs = &macs_; }
MacCounter::~MacCounter() { g_macs = previous_; }

torch::Tensor conv_forward(torch::nn::Conv2dImpl& c, const torch::Tensor& x) {
  auto y = c.forward(x);
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
