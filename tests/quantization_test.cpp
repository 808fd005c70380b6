// int8: weight and activation quantization, calibration, fake quantization against the integer
// reference computation, and the runtime's int8 conv kernel against that reference
#include "compress/quantization.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "runtime/backend.h"

using namespace adascale;
using namespace adascale::compress;

TEST(Quantization, PerChannelWeightsWithinHalfAStep) {
  torch::manual_seed(1);
  auto w = torch::randn({6, 3, 3, 3}) * torch::linspace(0.1, 3.0, 6).view({6, 1, 1, 1});
  auto q = quantize_weight_per_channel(w);
  EXPECT_EQ(q.q.scalar_type(), torch::kInt8);
  EXPECT_LE(q.q.abs().max().item<int>(), 127);
  auto err = (dequantize_weight(q) - w).abs().reshape({6, -1}).amax(1);
  EXPECT_TRUE((err <= q.scale * 0.5 + 1e-7).all().item<bool>());
  // every channel uses its own scale: the largest weight of each maps to +-127
  EXPECT_EQ(q.q.abs().reshape({6, -1}).amax(1).min().item<int>(), 127);
}

TEST(Quantization, ObserversAndParameters) {
  auto p = activation_params(-1.0, 3.0);
  EXPECT_NEAR(p.scale, 4.0 / 255, 1e-7);
  EXPECT_NEAR(dequantize_activation(quantize_activation(torch::zeros({1}), p), p).item<float>(),
              0.0f, 1e-7);  // zero is exact
  auto x = torch::randn({10000});
  x[0] = 50.0;  // one outlier
  ActivationObserver minmax, pct(99.9);
  minmax.observe(x);
  pct.observe(x);
  EXPECT_DOUBLE_EQ(minmax.hi(), 50.0);
  EXPECT_LT(pct.hi(), 5.0);  // the percentile ignores the outlier
  EXPECT_THROW(ActivationObserver(20.0), std::invalid_argument);
}

TEST(Quantization, FakeQuantHasStraightThroughGradient) {
  auto x = torch::linspace(-1, 1, 11).requires_grad_(true);
  fake_quantize_activation(x, activation_params(-1, 1)).sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), torch::ones_like(x)));
}

namespace {
struct ConvCase {
  torch::Tensor x, w, b;
  int64_t stride, pad, groups;
  std::string activation;
};

ConvCase random_case(uint64_t seed) {
  torch::manual_seed(seed);
  ConvCase c;
  c.groups = seed % 3 == 0 ? 2 : 1;
  c.stride = 1 + seed % 2;
  c.pad = seed % 2;
  c.activation = seed % 3 == 1 ? "relu" : (seed % 3 == 2 ? "relu6" : "none");
  c.x = torch::randn({2, 4, 7, 7}) * 2;
  c.w = torch::randn({6, 4 / c.groups, 3, 3}) * 0.3;
  c.b = torch::randn({6}) * 0.5;
  return c;
}

// input calibrated by min/max, weights per channel, bias at the input x weight scale
std::tuple<QuantParams, QuantizedWeight, torch::Tensor> quantize_case(const ConvCase& c) {
  ActivationObserver in_obs;
  in_obs.observe(c.x);
  const auto in = in_obs.params();
  auto wq = quantize_weight_per_channel(c.w);
  auto bias_q = quantize_bias(c.b, in, wq);
  return {in, wq, bias_q};
}

torch::Tensor activate(const torch::Tensor& y, const std::string& a) {
  if (a == "relu") return torch::relu(y);
  if (a == "relu6") return torch::clamp(y, 0, 6);
  return y;
}
}  // namespace

// the training side's fake quantization and the integer computation agree within one step
TEST(Quantization, IntegerReferenceMatchesFakeQuant) {
  int64_t exact = 0, total = 0;
  for (uint64_t seed = 0; seed < 12; ++seed) {
    const auto c = random_case(seed);
    const auto [in, wq, bias_q] = quantize_case(c);
    // fake-quant float path: dequantized input, weights and bias
    auto bias_deq = bias_q.to(torch::kFloat32) * (wq.scale * in.scale);
    auto y = activate(torch::conv2d(fake_quantize_activation(c.x, in), dequantize_weight(wq),
                                    bias_deq, c.stride, c.pad, 1, c.groups),
                      c.activation);
    ActivationObserver out_obs;
    out_obs.observe(y);
    const auto out = out_obs.params();
    auto fq = quantize_activation(y, out).to(torch::kInt32);
    auto iq =
        int8_conv2d_reference(quantize_activation(c.x, in), in, wq, bias_q, {c.stride, c.stride},
                              {c.pad, c.pad}, c.groups, out, c.activation)
            .to(torch::kInt32);
    ASSERT_EQ(fq.sizes(), iq.sizes());
    EXPECT_LE((fq - iq).abs().max().item<int>(), 1) << "seed " << seed;
    exact += fq.eq(iq).sum().item<int64_t>();
    total += fq.numel();
  }
  EXPECT_GT(static_cast<double>(exact) / total, 0.95);
}

// the runtime's int8 conv kernels (reference and XNNPACK) reproduce the integer computation
TEST(Quantization, RuntimeInt8ConvMatchesIntegerReference) {
  for (uint64_t seed = 0; seed < 6; ++seed) {
    const auto c = random_case(seed);
    const auto [in, wq, bias_q] = quantize_case(c);
    const QuantParams out = activation_params(-4.0, 6.0);
    auto xq = quantize_activation(c.x, in);
    auto want = int8_conv2d_reference(xq, in, wq, bias_q, {c.stride, c.stride}, {c.pad, c.pad},
                                      c.groups, out, c.activation)
                    .permute({0, 2, 3, 1})
                    .contiguous();

    auto x_nhwc = xq.permute({0, 2, 3, 1}).contiguous();
    auto w_ohwi = wq.q.permute({0, 2, 3, 1}).contiguous();
    auto wscale = wq.scale.contiguous();
    auto bias = bias_q.contiguous();
    ConstantMap constants;
    constants["w"] = {DType::kI8, {6, 3, 3, w_ohwi.size(3)}, w_ohwi.data_ptr()};
    constants["s"] = {DType::kF32, {6}, wscale.data_ptr()};
    constants["b"] = {DType::kI32, {6}, bias.data_ptr()};
    Node node;
    node.op = "conv2d";
    node.inputs = {"x"};
    node.output = "y";
    node.params = {{"weight", "w"}, {"weight_scale", "s"}, {"bias", "b"}};
    node.attrs.set("kernel", std::vector<int64_t>{3, 3})
        .set("stride", std::vector<int64_t>{c.stride, c.stride})
        .set("pad", std::vector<int64_t>{c.pad, c.pad, c.pad, c.pad})
        .set("groups", static_cast<double>(c.groups))
        .set("activation", c.activation)
        .set("out_scale", static_cast<double>(out.scale))
        .set("out_zero_point", static_cast<double>(out.zero_point));
    TensorInfo info{DType::kI8, {2, 7, 7, 4}, in.scale, in.zero_point};
    for (auto& backend : {make_reference_backend(), make_xnnpack_backend(1)}) {
      TensorInfo out_info;
      std::vector<uint8_t> got;
      auto s = backend->run_node(node, {info}, {x_nhwc.data_ptr()}, constants, &out_info, &got);
      ASSERT_TRUE(s.ok()) << s.message;
      ASSERT_EQ(got.size(), static_cast<size_t>(want.numel()));
      auto g = torch::from_blob(got.data(), {want.numel()}, torch::kInt8).to(torch::kInt32);
      const int max_diff = (g - want.view({-1}).to(torch::kInt32)).abs().max().item<int>();
      // the reference kernel is the specification: exact; XNNPACK within one step
      EXPECT_LE(max_diff, std::string(backend->name()) == "reference" ? 0 : 1)
          << backend->name() << " seed " << seed;
    }
  }
}
