#include "compress/quantization.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace adascale::compress {

QuantParams activation_params(double lo, double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  QuantParams p;
  p.scale = static_cast<float>(std::max((hi - lo) / 255.0, 1e-8));
  // zero point so that lo maps to -128, rounded and kept inside the int8 range
  const double zp = -128.0 - lo / p.scale;
  p.zero_point = static_cast<int32_t>(std::clamp(std::nearbyint(zp), -128.0, 127.0));
  return p;
}

ActivationObserver::ActivationObserver(double percentile) : percentile_(percentile) {
  if (!(percentile > 50.0 && percentile <= 100.0))
    throw std::invalid_argument("calibration percentile must be in (50, 100]");
}

void ActivationObserver::observe(const torch::Tensor& x) {
  auto v = x.detach().to(torch::kFloat32).reshape({-1});
  const int64_t n = v.numel();
  if (n == 0) return;
  double lo, hi;
  if (percentile_ >= 100.0) {
    lo = v.min().item<double>();
    hi = v.max().item<double>();
  } else {
    // order statistics by selection (linear time; a full quantile sorts millions of values)
    const double q = percentile_ / 100.0;
    const auto k_lo = static_cast<int64_t>(std::floor((1.0 - q) * static_cast<double>(n - 1)));
    const auto k_hi = static_cast<int64_t>(std::ceil(q * static_cast<double>(n - 1)));
    lo = std::get<0>(torch::kthvalue(v, k_lo + 1)).item<double>();
    hi = std::get<0>(torch::kthvalue(v, k_hi + 1)).item<double>();
  }
  // min/max accumulate; percentiles average over batches (one outlier batch cannot stretch them)
  if (batches_ == 0 || percentile_ >= 100.0) {
    lo_ = batches_ ? std::min(lo_, lo) : lo;
    hi_ = batches_ ? std::max(hi_, hi) : hi;
  } else {
    lo_ += (lo - lo_) / (batches_ + 1);
    hi_ += (hi - hi_) / (batches_ + 1);
  }
  ++batches_;
}

QuantParams ActivationObserver::params() const { return activation_params(lo_, hi_); }

QuantizedWeight quantize_weight_per_channel(const torch::Tensor& weight) {
  auto w = weight.detach().to(torch::kFloat32);
  const int64_t out = w.size(0);
  auto absmax = w.abs().reshape({out, -1}).amax(1).clamp_min(1e-12);
  QuantizedWeight q;
  q.scale = (absmax / 127.0f).contiguous();
  std::vector<int64_t> view(static_cast<size_t>(w.dim()), 1);
  view[0] = out;
  q.q = torch::clamp(torch::round(w / q.scale.view(view)), -127, 127).to(torch::kInt8);
  return q;
}

torch::Tensor dequantize_weight(const QuantizedWeight& w) {
  std::vector<int64_t> view(static_cast<size_t>(w.q.dim()), 1);
  view[0] = w.q.size(0);
  return w.q.to(torch::kFloat32) * w.scale.view(view);
}

torch::Tensor quantize_activation(const torch::Tensor& x, QuantParams p) {
  // multiply by the float reciprocal, as the runtime does (x / s can differ in the last bit);
  // torch::round rounds half to even
  return torch::clamp(torch::round(x.to(torch::kFloat32) * (1.0f / p.scale)) + p.zero_point, -128,
                      127)
      .to(torch::kInt8);
}

torch::Tensor dequantize_activation(const torch::Tensor& q, QuantParams p) {
  return (q.to(torch::kFloat32) - static_cast<float>(p.zero_point)) * p.scale;
}

torch::Tensor fake_quantize_activation(const torch::Tensor& x, QuantParams p) {
  auto fq = dequantize_activation(quantize_activation(x.detach(), p), p);
  return x + (fq - x).detach();
}

torch::Tensor fake_quantize_weight(const torch::Tensor& weight) {
  auto fq = dequantize_weight(quantize_weight_per_channel(weight));
  return weight + (fq - weight).detach();
}

torch::Tensor quantize_bias(const torch::Tensor& bias, QuantParams in, const QuantizedWeight& w) {
  auto scale = w.scale.to(torch::kFloat32) * in.scale;
  // a channel with (almost) no weight has a tiny step: saturate instead of wrapping around
  return torch::clamp(torch::round(bias.to(torch::kFloat64) / scale.to(torch::kFloat64)),
                      -2147483647.0, 2147483647.0)
      .to(torch::kInt32);
}

torch::Tensor int8_conv2d_reference(const torch::Tensor& x_q, QuantParams in,
                                    const QuantizedWeight& w, const torch::Tensor& bias_q,
                                    std::vector<int64_t> stride, std::vector<int64_t> padding,
                                    int64_t groups, QuantParams out,
                                    const std::string& activation) {
  torch::NoGradGuard no_grad;
  // integers are exact in float64 up to 2^53: the accumulation is the int32 sum
  auto x = x_q.to(torch::kFloat64) - in.zero_point;  // padding adds real 0, i.e. x_q = x_zp
  auto acc = torch::conv2d(x, w.q.to(torch::kFloat64), {}, stride, padding, {1, 1}, groups);
  if (bias_q.defined()) acc = acc + bias_q.to(torch::kFloat64).view({1, -1, 1, 1});
  // m[o] = in_scale * w_scale[o] / out_scale in float32, left to right
  auto m = (w.scale.to(torch::kFloat32) * in.scale) / out.scale;
  auto y = acc.to(torch::kFloat32) * m.view({1, -1, 1, 1});
  double lo = -128, hi = 127;
  if (activation == "relu" || activation == "relu6") lo = std::max(-128, out.zero_point);
  if (activation == "relu6")
    hi = std::min(127.0, static_cast<double>(std::nearbyint(6.0f / out.scale)) + out.zero_point);
  // clamp before rounding keeps huge values finite; equivalent since the bounds are integers
  y = torch::clamp(y, lo - out.zero_point, hi - out.zero_point);
  return (torch::round(y) + out.zero_point).to(torch::kInt8);
}

}  // namespace adascale::compress
