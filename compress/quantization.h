// Int8 quantization as the runtime computes it (docs/int8-arithmetic.md):
//   activations: int8 per tensor, asymmetric, real = scale * (q - zero_point), q in [-128, 127];
//   weights: int8 per output channel, symmetric (zero point 0), q in [-127, 127];
//   bias: int32 at scale input_scale * weight_scale[o];
//   requantization: round half to even in float32, clamp to the fused activation's range.
// Calibration observes activation ranges (min/max, or a percentile that ignores outliers);
// fake quantization (with a straight-through gradient) lets training see the rounding; and
// int8_conv2d_reference is the integer computation itself, for checking both.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace adascale::compress {

struct QuantParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// asymmetric int8 parameters covering [lo, hi] (widened to include 0, so 0 is exact)
QuantParams activation_params(double lo, double hi);

class ActivationObserver {
 public:
  // percentile = 100: min/max; below 100 (e.g. 99.99): the range of that central share of values
  explicit ActivationObserver(double percentile = 100.0);
  void observe(const torch::Tensor& x);
  QuantParams params() const;
  double lo() const { return lo_; }
  double hi() const { return hi_; }

 private:
  double percentile_;
  double lo_ = 0.0, hi_ = 0.0;
  int64_t batches_ = 0;
};

struct QuantizedWeight {
  torch::Tensor q;      // int8, same shape as the weight
  torch::Tensor scale;  // float32 [out]
};
QuantizedWeight quantize_weight_per_channel(const torch::Tensor& weight);
torch::Tensor dequantize_weight(const QuantizedWeight& w);

torch::Tensor quantize_activation(const torch::Tensor& x, QuantParams p);    // -> int8
torch::Tensor dequantize_activation(const torch::Tensor& q, QuantParams p);  // -> float32
// forward: dequantize(quantize(x)); backward: identity inside the range (straight-through)
torch::Tensor fake_quantize_activation(const torch::Tensor& x, QuantParams p);
torch::Tensor fake_quantize_weight(const torch::Tensor& weight);

// the runtime's int8 conv2d (NCHW here): acc = bias_q + sum((x_q - x_zp) * w_q) in integers,
// y = requantize(acc * (in_scale * w_scale[o] / out_scale), out_zp, activation range)
torch::Tensor int8_conv2d_reference(const torch::Tensor& x_q, QuantParams in,
                                    const QuantizedWeight& w, const torch::Tensor& bias_q,
                                    std::vector<int64_t> stride, std::vector<int64_t> padding,
                                    int64_t groups, QuantParams out, const std::string& activation);
// int32 bias for a float bias, at scale in.scale * w.scale[o]
torch::Tensor quantize_bias(const torch::Tensor& bias, QuantParams in, const QuantizedWeight& w);

}  // namespace adascale::compress
