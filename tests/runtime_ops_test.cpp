// Per-op harness: every registered op, reference kernel vs XNNPACK backend, random shapes and data.
// fp32 within 1e-4 relative, int8 within one quantization step.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/arch/cpu_kernels.h"
#if ADASCALE_X86_KERNELS
#include "runtime/arch/conv2d_int8_vnni.h"
#endif
#include "runtime/backend.h"
#include "runtime/op_registry.h"
#include "runtime_op_cases.h"
#include "runtime_test_util.h"

namespace adascale {
namespace {

TEST(RuntimeOps, EveryRegisteredOpHasAGenerator) {
  const auto gens = generators();
  for (const OpDef& op : OpRegistry::instance().ops())
    EXPECT_TRUE(gens.count(op.name)) << "no test generator for op " << op.name;
  // the registry holds exactly the ops of the list, under the names the list gives them
  const std::vector<std::string> listed = {
#define ADASCALE_OP(name) #name,
#include "runtime/ops/op_list.h"
#undef ADASCALE_OP
  };
  std::set<std::string> registered;
  for (const OpDef& op : OpRegistry::instance().ops()) registered.insert(op.name);
  EXPECT_EQ(OpRegistry::instance().ops().size(), listed.size());
  EXPECT_EQ(registered, std::set<std::string>(listed.begin(), listed.end()));
}

class RuntimeOpParity : public ::testing::TestWithParam<std::string> {};

// The XNNPACK backend with and without its architecture kernels, so XNNPACK's own kernel for a
// case stays covered on CPUs where an arch kernel takes it over.
TEST_P(RuntimeOpParity, ReferenceMatchesXnnpack) {
  const std::string op_name = GetParam();
  const Generator generate = generators().at(op_name);
  auto reference = make_reference_backend();
  std::unique_ptr<Backend> xnnpacks[] = {make_xnnpack_backend(1),
                                         make_xnnpack_backend(1, /*arch_kernels=*/false)};
  int checked = 0;
  std::set<int> int8_values;  // guards against saturated (trivially equal) int8 outputs
  for (int int8 = 0; int8 < 2; ++int8) {
    for (int trial = 0; trial < 25; ++trial) {
      std::mt19937 rng(1000 * int8 + trial + std::hash<std::string>()(op_name) % 7919);
      OpCase c;
      c.node.op = op_name;
      c.node.output = "y";
      for (size_t i = 0; i < 3; ++i) c.node.inputs.push_back("x" + std::to_string(i));
      if (!generate(rng, int8 != 0, &c)) break;
      c.node.inputs.resize(c.infos.size());
      std::vector<const void*> ptrs;
      for (const auto& in : c.inputs) ptrs.push_back(in.data());
      TensorInfo ref_info;
      std::vector<uint8_t> ref_out;
      Status s = reference->run_node(c.node, c.infos, ptrs, c.constants, &ref_info, &ref_out);
      ASSERT_TRUE(s.ok()) << op_name << ": " << s.message;
      for (const auto& xnnpack : xnnpacks) {
        const std::string what = op_name + (int8 ? " int8" : " f32") + " on " + xnnpack->name() +
                                 " trial " + std::to_string(trial) + " input " +
                                 shape_string(c.infos[0].shape);
        TensorInfo xnn_info;
        std::vector<uint8_t> xnn_out;
        s = xnnpack->run_node(c.node, c.infos, ptrs, c.constants, &xnn_info, &xnn_out);
        ASSERT_TRUE(s.ok()) << what << ": " << s.message;
        ASSERT_EQ(ref_info.shape, xnn_info.shape) << what;
        ASSERT_EQ(ref_out.size(), xnn_out.size()) << what;
        const size_t count = static_cast<size_t>(shape_elements(ref_info.shape));
        if (ref_info.dtype == DType::kF32) {
          const float* a = reinterpret_cast<const float*>(ref_out.data());
          const float* b = reinterpret_cast<const float*>(xnn_out.data());
          for (size_t i = 0; i < count; ++i)
            ASSERT_NEAR(a[i], b[i], 1e-4f * std::max(1.0f, std::fabs(a[i]))) << what << " at " << i;
        } else {
          const int8_t* a = reinterpret_cast<const int8_t*>(ref_out.data());
          const int8_t* b = reinterpret_cast<const int8_t*>(xnn_out.data());
          for (size_t i = 0; i < count; ++i) {
            ASSERT_LE(std::abs(a[i] - b[i]), 1) << what << " at " << i;
            int8_values.insert(a[i]);
          }
        }
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
  if (!int8_values.empty()) EXPECT_GT(int8_values.size(), 20u) << "int8 outputs look saturated";
}

// A random int8 conv2d (groups 1) with the given channels: kernels 1..5, stride 1..2, asymmetric
// padding, any fused activation, batch 1..2.
OpCase dense_int8_conv(std::mt19937& rng, int in_c, int out_c) {
  OpCase c;
  c.node.op = "conv2d";
  c.node.output = "y";
  c.node.inputs = {"x0"};
  const int kh = rand_int(rng, 1, 5), kw = rand_int(rng, 1, 5);
  const Shape shape = {rand_int(rng, 1, 2), rand_int(rng, kh, 12), rand_int(rng, kw, 12), in_c};
  window_attrs(rng, &c, "kernel", kh, kw, /*pad_lt_k=*/true);  // padding up to k - 1
  c.node.attrs.set("stride", std::vector<int64_t>{rand_int(rng, 1, 3), rand_int(rng, 1, 3)});
  c.node.attrs.set("groups", 1).set("activation", random_activation(rng));
  const float in_scale = rand_float(rng, 0.02f, 0.1f);
  // the extreme zero points make the shifted padding byte 0 or 255
  const int zero_points[] = {-128, 127, rand_int(rng, -20, 20)};
  c.add_input(rng, DType::kI8, shape, in_scale, zero_points[rand_int(rng, 0, 2)]);
  const size_t wcount = static_cast<size_t>(out_c * kh * kw * in_c);
  c.add_const("weight", DType::kI8, {out_c, kh, kw, in_c}, random_int8(rng, wcount));
  c.add_const("weight_scale", DType::kF32, {out_c}, random_floats(rng, out_c, 0.002f, 0.01f));
  if (rand_int(rng, 0, 1)) {
    std::vector<int32_t> b(static_cast<size_t>(out_c));
    for (int32_t& v : b) v = rand_int(rng, -2000, 2000);
    c.add_const("bias", DType::kI32, {out_c}, b);
  }
  set_out_quant(rng, &c, in_scale * 0.006f * std::sqrt(float(kh * kw * in_c)) * 40.0f);
  return c;
}

// The AVX512-VNNI int8 convolution (runtime/arch/) is the reference kernel bit for bit, over
// channel counts that cross its 4-byte groups and 16-channel blocks, and in the packed-row layout
// it uses for inputs of 1-3 channels.
#if ADASCALE_X86_KERNELS
TEST(RuntimeArchKernels, VnniInt8ConvIsBitExactWithTheReference) {
  if (!Conv2dInt8Vnni::supported()) GTEST_SKIP() << "this CPU has no AVX512-VNNI";
  auto reference = make_reference_backend();
  std::unique_ptr<Backend> xnnpacks[] = {make_xnnpack_backend(1), make_xnnpack_backend(2)};
  const int in_cs[] = {1, 2, 3, 4, 5, 16, 19, 32, 64};
  const int out_cs[] = {1, 7, 16, 17, 40};
  std::mt19937 rng(11);
  std::set<int> values;
  int packed_rows = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const int in_c = in_cs[trial % 9], out_c = out_cs[trial % 5];
    OpCase c = dense_int8_conv(rng, in_c, out_c);
    const std::string what = "trial " + std::to_string(trial) + " input " +
                             shape_string(c.infos[0].shape) + " out " + std::to_string(out_c);
    std::vector<const void*> ptrs = {c.inputs[0].data()};
    TensorInfo ref_info, vnni_info;
    std::vector<uint8_t> ref_out, vnni_out;
    Status s = reference->run_node(c.node, c.infos, ptrs, c.constants, &ref_info, &ref_out);
    ASSERT_TRUE(s.ok()) << what << ": " << s.message;
    for (const auto& xnnpack : xnnpacks) {  // one thread and two
      s = xnnpack->run_node(c.node, c.infos, ptrs, c.constants, &vnni_info, &vnni_out);
      ASSERT_TRUE(s.ok()) << what << ": " << s.message;
      ASSERT_EQ(ref_info.shape, vnni_info.shape) << what;
      ASSERT_EQ(ref_out, vnni_out) << what;
    }
    for (uint8_t v : ref_out) values.insert(static_cast<int8_t>(v));
    const auto kernel = c.node.attrs.get_ints("kernel", {});
    const auto stride = c.node.attrs.get_ints("stride", {});
    const auto pad = c.node.attrs.get_ints("pad", {});
    Conv2dInt8Geometry g{in_c,      out_c,  kernel[0], kernel[1], stride[0],
                         stride[1], pad[0], pad[1],    pad[2],    pad[3]};
    const float* scales = static_cast<const float*>(c.constants.at("conv2d.weight_scale").data);
    const int8_t* weight = static_cast<const int8_t*>(c.constants.at("conv2d.weight").data);
    auto direct = Conv2dInt8Vnni::create(g, Conv2dInt8Quant{}, weight, nullptr, scales);
    ASSERT_TRUE(direct);
    packed_rows += direct->packs_rows();
  }
  EXPECT_GT(values.size(), 100u) << "outputs look saturated";
  EXPECT_GT(packed_rows, 0) << "no case used the packed-row layout";
  // a padded input smaller than the kernel has no output: nothing is read or written
  OpCase c = dense_int8_conv(rng, 16, 16);
  while (c.node.attrs.get_ints("kernel", {})[0] < 2) c = dense_int8_conv(rng, 16, 16);
  c.node.attrs.set("pad", std::vector<int64_t>{0, 0, 0, 0});
  c.infos[0].shape[1] = c.node.attrs.get_ints("kernel", {})[0] - 1;
  c.inputs[0].resize(c.infos[0].bytes());
  for (const auto& backend : {make_reference_backend(), make_xnnpack_backend(1)}) {
    TensorInfo info;
    std::vector<uint8_t> out;
    Status s = backend->run_node(c.node, c.infos, {c.inputs[0].data()}, c.constants, &info, &out);
    ASSERT_TRUE(s.ok()) << backend->name() << ": " << s.message;
    EXPECT_EQ(info.shape[1], 0);
    EXPECT_TRUE(out.empty());
  }
}

#endif

// A prepared int8 branch runs its dense convolution on the VNNI kernel where the CPU has one and
// the backend allows architecture kernels, else on XNNPACK's int8 kernels for this CPU, and
// names the kernel it ran; all agree with the reference backend (bit for bit on VNNI).
TEST(RuntimeArchKernels, PreparedInt8BranchNamesTheKernelItRan) {
  std::mt19937 rng(3);
  OpCase c = dense_int8_conv(rng, 16, 24);
  const TensorInfo& in = c.infos[0];
  Branch branch;
  branch.name = "int8 conv";
  branch.input = "input";
  branch.output = "out";
  Node quantize;
  quantize.op = "quantize";
  quantize.inputs = {"input"};
  quantize.output = "x0";
  quantize.attrs.set("out_scale", in.scale).set("out_zero_point", in.zero_point);
  Node dequantize;
  dequantize.op = "dequantize";
  dequantize.inputs = {"y"};
  dequantize.output = "out";
  branch.nodes = {quantize, c.node, dequantize};
  Shape shape = in.shape;
  shape[0] = 1;
  const auto x = random_floats(rng, static_cast<size_t>(shape_elements(shape)), -3, 3);
  std::vector<std::vector<float>> outputs;
  std::vector<std::string> kernels;
  for (const auto& backend : {make_reference_backend(), make_xnnpack_backend(1),
                              make_xnnpack_backend(1, /*arch_kernels=*/false)}) {
    std::unique_ptr<PreparedBranch> prepared;
    Status s = backend->prepare(branch, c.constants, shape, &prepared);
    ASSERT_TRUE(s.ok()) << backend->name() << ": " << s.message;
    std::vector<float> y(static_cast<size_t>(prepared->output_features()));
    // a batch of 3 first re-plans the arena and sets the kernels up again, then back to 1
    std::vector<float> x3, y3(3 * y.size());
    for (int i = 0; i < 3; ++i) x3.insert(x3.end(), x.begin(), x.end());
    ASSERT_TRUE(prepared->run(x3.data(), 3, y3.data(), y3.size()).ok());
    ASSERT_TRUE(prepared->run(x.data(), 1, y.data(), y.size()).ok());
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], y3[2 * y.size() + i]) << i;
    std::vector<NodeTiming> timings;
    ASSERT_TRUE(prepared->profile(x.data(), 1, &timings).ok());
    ASSERT_EQ(timings.size(), 3u);
    kernels.push_back(timings[1].kernel);
    outputs.push_back(y);
  }
  const std::string xnnpack = std::string("xnnpack-") + xnnpack_int8_isa();
  EXPECT_EQ(kernels, (std::vector<std::string>{"reference", int8_conv_kernel(), xnnpack}));
  if (vnni_int8_conv_supported()) {
    EXPECT_EQ(kernels[1], "avx512vnni");
    EXPECT_EQ(outputs[0], outputs[1]);  // bit for bit
  } else {
    EXPECT_EQ(kernels[1], xnnpack);
  }
#if defined(__aarch64__) || defined(__arm__)
  EXPECT_TRUE(xnnpack == "xnnpack-neondot" || xnnpack == "xnnpack-neon") << xnnpack;
#endif
  // a run that must exercise one particular kernel family (e.g. qemu's cortex-a53, which has no
  // dot-product instructions) names it here
  if (const char* expected = std::getenv("ADASCALE_EXPECT_INT8_KERNEL"))
    EXPECT_EQ(kernels[1], expected);
  const float step = c.node.attrs.get_float("out_scale", 0);
  for (size_t i = 0; i < outputs[0].size(); ++i)
    ASSERT_NEAR(outputs[0][i], outputs[2][i], step * 1.01f) << i;
}

INSTANTIATE_TEST_SUITE_P(AllOps, RuntimeOpParity, ::testing::ValuesIn(registered_op_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace adascale
