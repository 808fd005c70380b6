// Random cases for every registered runtime op (fp32 and, where supported, int8): the per-op
// harnesses (reference vs XNNPACK, and both against LibTorch) draw their inputs from here.
#pragma once

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <random>

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
      // wide enough that relu6 and the int8 clamps are exercised
      auto values = random_floats(rng, count, -8.0f, 8.0f);
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

// every op in the registry, the parameter list of the per-op harnesses
std::vector<std::string> registered_op_names() {
  std::vector<std::string> names;
  for (const OpDef& op : OpRegistry::instance().ops()) names.push_back(op.name);
  return names;
}

}  // namespace
}  // namespace adascale
