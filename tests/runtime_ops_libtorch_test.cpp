// Per-op harness against LibTorch: every registered runtime op, on both backends, compared with
// the same computation written with LibTorch ops, fp32 and int8. Fp32 within 2e-4 relative. Int8
// is checked against fake quantization: LibTorch computes the op in float on the dequantized
// inputs, weights (q * weight_scale) and biases (q * input_scale * weight_scale), then quantizes
// with the output's scale and zero point; the runtime must land within one step. Same random
// cases as the reference-vs-XNNPACK harness (runtime_op_cases.h).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "runtime_op_cases.h"

namespace adascale {
namespace {

namespace F = torch::nn::functional;

torch::Tensor as_torch(const TensorInfo& info, const void* data) {
  const auto n = shape_elements(info.shape);
  if (info.dtype == DType::kF32)
    return torch::from_blob(const_cast<void*>(data), {n}, torch::kFloat32).clone().view(info.shape);
  auto q = torch::from_blob(const_cast<void*>(data), {n}, torch::kInt8).to(torch::kFloat32);
  return ((q - info.zero_point) * info.scale).view(info.shape);
}

torch::Tensor raw_constant(const OpCase& c, const std::string& slot) {
  const auto& t = c.constants.at(c.node.params.at(slot));
  const auto type = t.dtype == DType::kF32  ? torch::kFloat32
                    : t.dtype == DType::kI8 ? torch::kInt8
                                            : torch::kInt32;
  return torch::from_blob(const_cast<void*>(t.data), {shape_elements(t.shape)}, type)
      .clone()
      .view(t.shape)
      .to(torch::kFloat64);
}

// the real value of a constant: int8 weights times their per-output-channel scale, int32 biases
// times input scale x weight scale
torch::Tensor constant(const OpCase& c, const std::string& slot) {
  auto v = raw_constant(c, slot);
  const auto dtype = c.constants.at(c.node.params.at(slot)).dtype;
  if (dtype == DType::kF32) return v.to(torch::kFloat32);
  auto scale = raw_constant(c, "weight_scale");
  if (dtype == DType::kI8) {
    std::vector<int64_t> view(static_cast<size_t>(v.dim()), 1);
    view[0] = -1;
    return (v * scale.view(view)).to(torch::kFloat32);
  }
  return (v * scale * static_cast<double>(c.infos[0].scale)).to(torch::kFloat32);
}

torch::Tensor activate(const torch::Tensor& y, const Attrs& attrs) {
  const auto act = attrs.get_string("activation", "none");
  if (act == "relu") return torch::relu(y);
  if (act == "relu6") return torch::clamp(y, 0, 6);
  return y;
}

torch::Tensor nchw(const torch::Tensor& nhwc) { return nhwc.permute({0, 3, 1, 2}); }
torch::Tensor nhwc(const torch::Tensor& x) { return x.permute({0, 2, 3, 1}).contiguous(); }

// pads [top, left, bottom, right] of an NCHW tensor with `value`
torch::Tensor pad(const torch::Tensor& x, const std::vector<int64_t>& p, double value) {
  return F::pad(x, F::PadFuncOptions({p[1], p[3], p[0], p[2]}).value(value));
}

// the LibTorch computation of one fp32 case
torch::Tensor expected(const OpCase& c) {
  std::vector<torch::Tensor> in;
  for (size_t i = 0; i < c.infos.size(); ++i)
    in.push_back(as_torch(c.infos[i], c.inputs[i].data()));
  const auto& a = c.node.attrs;
  const auto& op = c.node.op;
  if (op == "conv2d") {
    auto w = constant(c, "weight").permute({0, 3, 1, 2});
    auto b = c.node.params.count("bias") ? constant(c, "bias") : torch::Tensor();
    auto x = pad(nchw(in[0]), a.get_ints("pad", {0, 0, 0, 0}), 0.0);
    auto y = torch::conv2d(x, w, b, a.get_ints("stride", {1, 1}), std::vector<int64_t>{0, 0},
                           std::vector<int64_t>{1, 1}, a.get_int("groups", 1));
    return nhwc(activate(y, a));
  }
  if (op == "fully_connected") {
    auto x = in[0].reshape({in[0].size(0), -1});
    auto b = c.node.params.count("bias") ? constant(c, "bias") : torch::Tensor();
    return activate(torch::linear(x, constant(c, "weight"), b), a);
  }
  if (op == "batchnorm") return in[0] * constant(c, "scale") + constant(c, "shift");
  if (op == "relu") return torch::relu(in[0]);
  if (op == "relu6") return torch::clamp(in[0], 0, 6);
  if (op == "add") return activate(in[0] + in[1], a);
  if (op == "max_pool2d") {
    auto x = pad(nchw(in[0]), a.get_ints("pad", {0, 0, 0, 0}), -INFINITY);
    return nhwc(torch::max_pool2d(x, a.get_ints("pool", {}), a.get_ints("stride", {1, 1})));
  }
  if (op == "avg_pool2d") {  // the divisor counts only pixels inside the input
    const auto k = a.get_ints("pool", {}), s = a.get_ints("stride", {1, 1});
    const auto p = a.get_ints("pad", {0, 0, 0, 0});
    auto x = pad(nchw(in[0]), p, 0.0);
    auto ones = pad(torch::ones_like(nchw(in[0])), p, 0.0);
    return nhwc(torch::avg_pool2d(x, k, s) / torch::avg_pool2d(ones, k, s));
  }
  if (op == "global_avg_pool") return in[0].mean({1, 2}, /*keepdim=*/true);
  if (op == "concat") return torch::cat(in, -1);
  if (op == "flatten") return in[0].reshape({in[0].size(0), -1});
  if (op == "exit") return in[0];
  if (op == "softmax") return torch::softmax(in[0], -1);
  if (op == "dequantize") return in[0];
  if (op == "quantize") {
    const float s = a.get_float("out_scale", 1), z = a.get_float("out_zero_point", 0);
    return torch::clamp(torch::round(in[0] * (1.0f / s)) + z, -128, 127);
  }
  ADD_FAILURE() << "no LibTorch computation for op " << op;
  return {};
}

class RuntimeOpLibTorch : public ::testing::TestWithParam<std::string> {};

TEST_P(RuntimeOpLibTorch, BothBackendsMatchLibTorch) {
  const std::string op_name = GetParam();
  const Generator generate = generators().at(op_name);
  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(make_reference_backend());
  backends.push_back(make_xnnpack_backend(1));
  backends.push_back(make_xnnpack_backend(1, /*arch_kernels=*/false));  // XNNPACK's own kernels
  // ops with an int8 kernel (docs/int8-arithmetic.md); quantize / dequantize are checked in the
  // fp32 pass, where their cases live
  static const std::set<std::string> kInt8Ops = {
      "conv2d",     "fully_connected", "relu",   "relu6",   "add", "max_pool2d",
      "avg_pool2d", "global_avg_pool", "concat", "flatten", "exit"};
  int checked[2] = {0, 0};
  for (int int8 = 0; int8 < 2; ++int8)
    for (int trial = 0; trial < 25; ++trial) {
      std::mt19937 rng(5000 + 1000 * int8 + trial + std::hash<std::string>()(op_name) % 7919);
      OpCase c;
      c.node.op = op_name;
      c.node.output = "y";
      for (size_t i = 0; i < 3; ++i) c.node.inputs.push_back("x" + std::to_string(i));
      if (!generate(rng, int8 != 0, &c)) break;
      c.node.inputs.resize(c.infos.size());
      std::vector<const void*> ptrs;
      for (const auto& in : c.inputs) ptrs.push_back(in.data());
      const auto want = expected(c).contiguous();
      for (const auto& backend : backends) {
        TensorInfo info;
        std::vector<uint8_t> out;
        const std::string what = op_name + (int8 ? " int8" : " f32") + " on " + backend->name() +
                                 " trial " + std::to_string(trial) + " input " +
                                 shape_string(c.infos[0].shape);
        Status s = backend->run_node(c.node, c.infos, ptrs, c.constants, &info, &out);
        ASSERT_TRUE(s.ok()) << what << ": " << s.message;
        ASSERT_EQ(shape_elements(info.shape), want.numel()) << what;
        torch::Tensor got, w = want.view({-1});
        if (info.dtype == DType::kF32) {
          got = torch::from_blob(out.data(), {want.numel()}, torch::kFloat32).clone();
        } else {
          got = torch::from_blob(out.data(), {want.numel()}, torch::kInt8).to(torch::kFloat32);
          // fake quantization of the float result (quantize's expectation is integers already)
          if (op_name != "quantize")
            w = torch::clamp(torch::round(w * (1.0f / info.scale)) + info.zero_point, -128, 127);
        }
        const double tol = info.dtype == DType::kF32 ? 2e-4 : 1.0;
        auto bound = tol * torch::clamp_min(w.abs(), 1.0);
        if (info.dtype != DType::kF32) bound = torch::full_like(w, tol);
        const auto over = ((got - w).abs() > bound);
        ASSERT_FALSE(over.any().item<bool>())
            << what << ": max difference " << (got - w).abs().max().item<float>();
      }
      ++checked[int8];
    }
  EXPECT_GT(checked[0], 0);
  if (kInt8Ops.count(op_name)) EXPECT_GT(checked[1], 0) << op_name << " has no int8 cases";
}

INSTANTIATE_TEST_SUITE_P(AllOps, RuntimeOpLibTorch, ::testing::ValuesIn(registered_op_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace adascale
