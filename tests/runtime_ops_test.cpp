// Per-op harness: every registered op, reference kernel vs XNNPACK backend, random shapes and data.
// fp32 within 1e-4 relative, int8 within one quantization step.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <set>

#include "runtime/backend.h"
#include "runtime/op_registry.h"
#include "runtime_test_util.h"

namespace adascale {
namespace {

using testing::random_floats;
using testing::random_int8;

struct OpCase {
  Node node;
  std::vector<TensorInfo> infos;
  std::vector<std::vector<uint8_t>> inputs;
  std::map<std::string, std::vector<uint8_t>> storage;
  ConstantMap constants;

  template <typename T>
  void add_const(const std::string& slot, DType dtype, const Shape& shape,
                 const std::vector<T>& values) {
    const std::string name = node.op + "." + slot;
    auto& bytes = storage[name];
    bytes.resize(values.size() * sizeof(T));
    std::memcpy(bytes.data(), values.data(), bytes.size());
    constants[name] = ConstTensor{dtype, shape, bytes.data()};
    node.params[slot] = name;
  }
  void add_input(std::mt19937& rng, DType dtype, const Shape& shape, float scale = 0.05f,
                 int zero_point = 0) {
    TensorInfo info{dtype, shape, scale, zero_point};
    const size_t count = static_cast<size_t>(shape_elements(shape));
    std::vector<uint8_t> bytes(info.bytes());
    if (dtype == DType::kF32) {
      auto values = random_floats(rng, count, -4.0f, 4.0f);
      std::memcpy(bytes.data(), values.data(), bytes.size());
    } else {
      auto values = random_int8(rng, count, -128, 127);
      std::memcpy(bytes.data(), values.data(), bytes.size());
    }
    infos.push_back(info);
    inputs.push_back(std::move(bytes));
  }
};

int rand_int(std::mt19937& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}
float rand_float(std::mt19937& rng, float lo, float hi) {
  return std::uniform_real_distribution<float>(lo, hi)(rng);
}
const char* random_activation(std::mt19937& rng) {
  static const char* names[] = {"none", "relu", "relu6"};
  return names[rand_int(rng, 0, 2)];
}
void set_out_quant(std::mt19937& rng, OpCase* c, float scale) {
  c->node.attrs.set("out_scale", scale).set("out_zero_point", rand_int(rng, -20, 20));
}
Shape random_nhwc(std::mt19937& rng, int max_c = 12) {
  return {rand_int(rng, 1, 2), rand_int(rng, 1, 7), rand_int(rng, 1, 7), rand_int(rng, 1, max_c)};
}

// One generator per op; `int8` selects the quantized variant (returns false when unsupported).
using Generator = std::function<bool(std::mt19937&, bool int8, OpCase*)>;

void window_attrs(std::mt19937& rng, OpCase* c, const char* key, int kh, int kw, bool pad_lt_k) {
  auto pad = [&](int k) { return rand_int(rng, 0, pad_lt_k ? k - 1 : std::min(k - 1, 2)); };
  c->node.attrs.set(key, std::vector<int64_t>{kh, kw})
      .set("stride", std::vector<int64_t>{rand_int(rng, 1, 2), rand_int(rng, 1, 2)})
      .set("pad", std::vector<int64_t>{pad(kh), pad(kw), pad(kh), pad(kw)});
}

Generator pool_generator(bool supports_int8, bool needs_out_quant) {
  return [=](std::mt19937& rng, bool int8, OpCase* c) {
    if (int8 && !supports_int8) return false;
    const int kh = rand_int(rng, 2, 3), kw = rand_int(rng, 1, 3);
    Shape shape = random_nhwc(rng);
    shape[1] = std::max<int64_t>(shape[1], kh);
    shape[2] = std::max<int64_t>(shape[2], kw);
    window_attrs(rng, c, "pool", kh, kw, true);
    c->add_input(rng, int8 ? DType::kI8 : DType::kF32, shape, 0.05f, rand_int(rng, -10, 10));
    if (int8 && needs_out_quant) set_out_quant(rng, c, rand_float(rng, 0.03f, 0.08f));
    return true;
  };
}

Generator unary_generator(bool supports_int8, bool out_quant_for_int8 = false) {
  return [=](std::mt19937& rng, bool int8, OpCase* c) {
    if (int8 && !supports_int8) return false;
    c->add_input(rng, int8 ? DType::kI8 : DType::kF32, random_nhwc(rng), 0.05f,
                 rand_int(rng, -20, 20));
    if (int8 && out_quant_for_int8) set_out_quant(rng, c, rand_float(rng, 0.03f, 0.08f));
    return true;
  };
}

std::map<std::string, Generator> generators() {
  std::map<std::string, Generator> g;
  g["conv2d"] = [](std::mt19937& rng, bool int8, OpCase* c) {
    const int kind = rand_int(rng, 0, 2);  // dense, grouped, depthwise
    int groups = 1, gi = rand_int(rng, 1, 6), go = rand_int(rng, 1, 6);
    if (kind == 1) groups = rand_int(rng, 2, 3);
    if (kind == 2) groups = rand_int(rng, 1, 8), gi = 1, go = rand_int(rng, 1, 2);
    const int kh = rand_int(rng, 1, 4), kw = rand_int(rng, 1, 4);
    Shape shape = random_nhwc(rng);
    shape[1] = std::max<int64_t>(shape[1], kh);
    shape[2] = std::max<int64_t>(shape[2], kw);
    shape[3] = groups * gi;
    const int oc = groups * go;
    window_attrs(rng, c, "kernel", kh, kw, false);
    c->node.attrs.set("groups", groups).set("activation", random_activation(rng));
    const size_t wcount = static_cast<size_t>(oc * kh * kw * gi);
    const bool bias = rand_int(rng, 0, 1);
    if (!int8) {
      c->add_input(rng, DType::kF32, shape);
      c->add_const("weight", DType::kF32, {oc, kh, kw, gi}, random_floats(rng, wcount, -1, 1));
      if (bias) c->add_const("bias", DType::kF32, {oc}, random_floats(rng, oc, -1, 1));
      return true;
    }
    const float in_scale = rand_float(rng, 0.02f, 0.1f);
    c->add_input(rng, DType::kI8, shape, in_scale, rand_int(rng, -20, 20));
    c->add_const("weight", DType::kI8, {oc, kh, kw, gi}, random_int8(rng, wcount));
    c->add_const("weight_scale", DType::kF32, {oc}, random_floats(rng, oc, 0.002f, 0.01f));
    if (bias) {
      std::vector<int32_t> b(oc);
      for (int32_t& v : b) v = rand_int(rng, -2000, 2000);
      c->add_const("bias", DType::kI32, {oc}, b);
    }
    set_out_quant(rng, c, in_scale * 0.006f * std::sqrt(float(kh * kw * gi)) * 40.0f);
    return true;
  };
  g["fully_connected"] = [](std::mt19937& rng, bool int8, OpCase* c) {
    const int n = rand_int(rng, 1, 3), in_c = rand_int(rng, 1, 40), out_c = rand_int(rng, 1, 20);
    const Shape shape = rand_int(rng, 0, 1) ? Shape{n, in_c} : Shape{n, 1, 1, in_c};
    c->node.attrs.set("activation", random_activation(rng));
    const bool bias = rand_int(rng, 0, 1);
    const size_t wcount = static_cast<size_t>(in_c * out_c);
    if (!int8) {
      c->add_input(rng, DType::kF32, shape);
      c->add_const("weight", DType::kF32, {out_c, in_c}, random_floats(rng, wcount, -1, 1));
      if (bias) c->add_const("bias", DType::kF32, {out_c}, random_floats(rng, out_c, -1, 1));
      return true;
    }
    const float in_scale = rand_float(rng, 0.02f, 0.1f);
    c->add_input(rng, DType::kI8, shape, in_scale, rand_int(rng, -20, 20));
    c->add_const("weight", DType::kI8, {out_c, in_c}, random_int8(rng, wcount));
    c->add_const("weight_scale", DType::kF32, {out_c}, random_floats(rng, out_c, 0.002f, 0.01f));
    if (bias) {
      std::vector<int32_t> b(out_c);
      for (int32_t& v : b) v = rand_int(rng, -2000, 2000);
      c->add_const("bias", DType::kI32, {out_c}, b);
    }
    set_out_quant(rng, c, in_scale * 0.006f * std::sqrt(float(in_c)) * 40.0f);
    return true;
  };
  g["batchnorm"] = [](std::mt19937& rng, bool int8, OpCase* c) {
    if (int8) return false;
    Shape shape = random_nhwc(rng);
    c->add_input(rng, DType::kF32, shape);
    c->add_const("scale", DType::kF32, {shape[3]}, random_floats(rng, shape[3], 0.5f, 2.0f));
    c->add_const("shift", DType::kF32, {shape[3]}, random_floats(rng, shape[3], -1.0f, 1.0f));
    return true;
  };
  g["relu"] = unary_generator(true);
  g["relu6"] = unary_generator(true);
  g["add"] = [](std::mt19937& rng, bool int8, OpCase* c) {
    const Shape shape = random_nhwc(rng);
    const DType dtype = int8 ? DType::kI8 : DType::kF32;
    c->add_input(rng, dtype, shape, rand_float(rng, 0.03f, 0.1f), rand_int(rng, -20, 20));
    c->add_input(rng, dtype, shape, rand_float(rng, 0.03f, 0.1f), rand_int(rng, -20, 20));
    c->node.attrs.set("activation", random_activation(rng));
    if (int8) set_out_quant(rng, c, rand_float(rng, 0.05f, 0.15f));
    return true;
  };
  g["max_pool2d"] = pool_generator(true, false);
  g["avg_pool2d"] = pool_generator(true, true);
  g["global_avg_pool"] = unary_generator(true, true);
  g["concat"] = [](std::mt19937& rng, bool int8, OpCase* c) {
    Shape shape = random_nhwc(rng);
    const int count = rand_int(rng, 1, 3), zero_point = rand_int(rng, -10, 10);
    for (int i = 0; i < count; ++i) {
      shape[3] = rand_int(rng, 1, 9);
      c->add_input(rng, int8 ? DType::kI8 : DType::kF32, shape, 0.05f, zero_point);
    }
    return true;
  };
  g["flatten"] = unary_generator(true);
  g["exit"] = unary_generator(true);
  g["softmax"] = [](std::mt19937& rng, bool int8, OpCase* c) {
    if (int8) return false;
    c->add_input(rng, DType::kF32, {rand_int(rng, 1, 4), rand_int(rng, 1, 30)});
    return true;
  };
  g["quantize"] = [](std::mt19937& rng, bool int8, OpCase* c) {
    if (int8) return false;
    c->add_input(rng, DType::kF32, random_nhwc(rng));
    set_out_quant(rng, c, rand_float(rng, 0.01f, 0.05f));
    return true;
  };
  g["dequantize"] = [](std::mt19937& rng, bool int8, OpCase* c) {
    if (int8) return false;
    c->add_input(rng, DType::kI8, random_nhwc(rng), rand_float(rng, 0.01f, 0.1f),
                 rand_int(rng, -30, 30));
    return true;
  };
  return g;
}

TEST(RuntimeOps, EveryRegisteredOpHasAGenerator) {
  const auto gens = generators();
  for (const OpDef& op : OpRegistry::instance().ops())
    EXPECT_TRUE(gens.count(op.name)) << "no test generator for op " << op.name;
  EXPECT_EQ(OpRegistry::instance().ops().size(), 15u);
}

class RuntimeOpParity : public ::testing::TestWithParam<std::string> {};

TEST_P(RuntimeOpParity, ReferenceMatchesXnnpack) {
  const std::string op_name = GetParam();
  const Generator generate = generators().at(op_name);
  auto reference = make_reference_backend();
  auto xnnpack = make_xnnpack_backend(1);
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
      TensorInfo ref_info, xnn_info;
      std::vector<uint8_t> ref_out, xnn_out;
      const std::string what = op_name + (int8 ? " int8" : " f32") + " trial " +
                               std::to_string(trial) + " input " + shape_string(c.infos[0].shape);
      Status s = reference->run_node(c.node, c.infos, ptrs, c.constants, &ref_info, &ref_out);
      ASSERT_TRUE(s.ok()) << what << ": " << s.message;
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
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
  if (!int8_values.empty()) EXPECT_GT(int8_values.size(), 20u) << "int8 outputs look saturated";
}

std::vector<std::string> registered_op_names() {
  std::vector<std::string> names;
  for (const OpDef& op : OpRegistry::instance().ops()) names.push_back(op.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(AllOps, RuntimeOpParity, ::testing::ValuesIn(registered_op_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace adascale
