#include "runtime/graph.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <unordered_set>

#include "runtime/op_registry.h"

namespace adascale {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kI8:
      return "i8";
    case DType::kI32:
      return "i32";
  }
  return "?";
}

bool parse_dtype(const std::string& text, DType* dtype) {
  if (text == "f32")
    *dtype = DType::kF32;
  else if (text == "i8")
    *dtype = DType::kI8;
  else if (text == "i32")
    *dtype = DType::kI32;
  else
    return false;
  return true;
}

size_t dtype_size(DType dtype) { return dtype == DType::kI8 ? 1 : 4; }

int64_t shape_elements(const Shape& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) return -1;
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / 16 / dim) return -1;
    count *= dim;
  }
  return count;
}

std::string shape_string(const Shape& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
  out << "]";
  return out.str();
}

namespace {

// Attrs come from untrusted JSON: converting a double outside the target range is undefined
// behaviour, so non-integral, huge or NaN values map to INT64_MIN, which every caller rejects
// (they all check a lower bound), and out-of-range floats saturate to +-inf.
int64_t to_int(double v) {
  return v >= -9.0e15 && v <= 9.0e15 && v == std::floor(v) ? static_cast<int64_t>(v)
                                                           : std::numeric_limits<int64_t>::min();
}
float to_float(double v) {
  if (v > std::numeric_limits<float>::max()) return std::numeric_limits<float>::infinity();
  if (v < -std::numeric_limits<float>::max()) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(v);
}

}  // namespace

int64_t Attrs::get_int(const std::string& key, int64_t fallback) const {
  auto it = numbers.find(key);
  return it == numbers.end() || it->second.size() != 1 ? fallback : to_int(it->second[0]);
}

std::vector<int64_t> Attrs::get_ints(const std::string& key, std::vector<int64_t> fallback) const {
  auto it = numbers.find(key);
  if (it == numbers.end()) return fallback;
  std::vector<int64_t> values;
  for (double v : it->second) values.push_back(to_int(v));
  return values;
}

float Attrs::get_float(const std::string& key, float fallback) const {
  auto it = numbers.find(key);
  return it == numbers.end() || it->second.size() != 1 ? fallback : to_float(it->second[0]);
}

std::string Attrs::get_string(const std::string& key, const std::string& fallback) const {
  auto it = strings.find(key);
  return it == strings.end() ? fallback : it->second;
}

Attrs& Attrs::set(const std::string& key, double value) {
  numbers[key] = {value};
  return *this;
}

Attrs& Attrs::set(const std::string& key, const std::vector<int64_t>& values) {
  numbers[key].assign(values.begin(), values.end());
  return *this;
}

Attrs& Attrs::set(const std::string& key, const std::string& value) {
  strings[key] = value;
  return *this;
}

Status parse_activation(const Attrs& attrs, Activation* activation) {
  const std::string name = attrs.get_string("activation", "none");
  if (name == "none")
    *activation = Activation::kNone;
  else if (name == "relu")
    *activation = Activation::kRelu;
  else if (name == "relu6")
    *activation = Activation::kRelu6;
  else
    return error_status(ErrorCode::kInvalidGraph, "unknown activation '" + name + "'");
  return ok_status();
}

void activation_range_f32(Activation activation, float* lo, float* hi) {
  *lo = activation == Activation::kNone ? -std::numeric_limits<float>::infinity() : 0.0f;
  *hi = activation == Activation::kRelu6 ? 6.0f : std::numeric_limits<float>::infinity();
}

namespace {

// per-output-channel symmetric int8 of one float row (docs/int8-arithmetic.md), returning its
// scale: the same float32 operations as compress::quantize_weight_per_channel, so both give the
// same bytes. Both loops vectorize (graph.cpp is built with -fno-trapping-math): |x| is compared
// as integers (the bits of non-negative floats order like their values), and round half to even
// is the float addition of 1.5 * 2^23 (exact below 2^22 in magnitude under the default rounding
// mode); clamping to +-127 before rounding gives the same integers as rounding first because the
// bounds are integers.
float quantize_row(const float* row, int64_t n, int8_t* out) {
  constexpr float kRound = 12582912.0f;
  uint32_t max_bits = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, row + i, sizeof(bits));
    bits &= 0x7fffffffu;
    max_bits = max_bits > bits ? max_bits : bits;
  }
  float absmax;
  std::memcpy(&absmax, &max_bits, sizeof(absmax));
  const float s = std::max(absmax, 1e-12f) / 127.0f;
  for (int64_t i = 0; i < n; ++i) {
    float v = row[i] / s;
    v = v < -127.0f ? -127.0f : v;
    v = v > 127.0f ? 127.0f : v;
    out[i] = static_cast<int8_t>(static_cast<int32_t>((v + kRound) - kRound));
  }
  return s;
}

}  // namespace

Status derive_weights(const Branch& branch, const ConstantMap& constants, bool materialize,
                      DerivedWeights* out) {
  out->branch = branch;
  out->constants.clear();
  out->storage.clear();
  out->storage_i8.clear();
  out->storage_i32.clear();
  out->derived_bytes = 0;
  for (Node& node : out->branch.nodes) {
    const bool slice = node.attrs.has("weight_slice");
    const bool mul = node.params.count("weight_mul") > 0;
    const bool quantize = node.attrs.has("weight_quantize");
    for (const auto& [slot, name] : node.params) {
      auto it = constants.find(name);
      if (it != constants.end()) out->constants[name] = it->second;  // unknown: infer_shapes says
    }
    const bool halves = node.attrs.has("weight_slice_halves");
    if (!slice && !mul && !quantize && !halves) continue;
    const std::string at = "branch '" + branch.name + "': node '" + node.output + "': ";
    if (node.op != "conv2d" && node.op != "fully_connected")
      return error_status(
          ErrorCode::kInvalidGraph,
          at + "weight_slice / weight_mul / weight_quantize apply to conv2d and fully_connected");
    auto w_it =
        node.params.count("weight") ? constants.find(node.params.at("weight")) : constants.end();
    if (w_it == constants.end())
      return error_status(ErrorCode::kInvalidGraph, at + "missing or unknown weight");
    const ConstTensor& w = w_it->second;
    if (w.dtype != DType::kF32 || w.shape.size() < 2 ||
        std::any_of(w.shape.begin(), w.shape.end(), [](int64_t d) { return d < 1; }))
      return error_status(ErrorCode::kInvalidGraph,
                          at + "derived weights need a float32 weight of rank >= 2, no empty axis");
    const int64_t rows = w.shape.front(), cols = w.shape.back();
    int64_t keep_rows = rows, keep_cols = cols;
    bool halve_rows = false, halve_cols = false;
    if (slice) {
      const auto dims = node.attrs.get_ints("weight_slice", {});
      if (dims.size() != 2 || dims[0] < 1 || dims[0] > rows || dims[1] < 1 || dims[1] > cols)
        return error_status(
            ErrorCode::kInvalidGraph,
            at + "weight_slice must be [O', I'] within the weight " + shape_string(w.shape));
      keep_rows = dims[0];
      keep_cols = dims[1];
    }
    if (halves) {
      const auto flags = node.attrs.get_ints("weight_slice_halves", {});
      if (!slice || flags.size() != 2 || (flags[0] != 0 && flags[0] != 1) ||
          (flags[1] != 0 && flags[1] != 1))
        return error_status(ErrorCode::kInvalidGraph,
                            at + "weight_slice_halves must be [R, C] of 0 or 1, with weight_slice");
      halve_rows = flags[0] == 1;
      halve_cols = flags[1] == 1;
    }
    // entry i of a kept axis: the leading ones, or those of each half (keep <= full, so the
    // second half always holds keep - keep / 2 of them)
    auto source_index = [](bool halves, int64_t i, int64_t keep, int64_t full) {
      return !halves || i < keep / 2 ? i : full / 2 + (i - keep / 2);
    };
    std::vector<int64_t> col_index(static_cast<size_t>(keep_cols));
    for (int64_t c = 0; c < keep_cols; ++c)
      col_index[c] = source_index(halve_cols, c, keep_cols, cols);
    // the float32 [O'] tensor params[slot] names (one value per kept output row)
    auto per_row = [&](const char* slot, const char* what, const float** data) {
      auto it = constants.find(node.params.at(slot));
      if (it == constants.end() || it->second.dtype != DType::kF32 ||
          it->second.shape != Shape{keep_rows})
        return error_status(
            ErrorCode::kInvalidGraph,
            at + what + " must be a float32 tensor of shape [" + std::to_string(keep_rows) + "]");
      *data = static_cast<const float*>(it->second.data);
      return ok_status();
    };
    const float* scale = nullptr;
    if (mul) {
      Status s = per_row("weight_mul", "weight_mul", &scale);
      if (!s.ok()) return s;
    }
    float input_scale = 0.0f;
    const float* bias = nullptr;
    if (quantize) {
      if (node.params.count("weight_scale"))
        return error_status(ErrorCode::kInvalidGraph,
                            at + "weight_quantize derives weight_scale; none may be stored");
      if (node.attrs.get_string("weight_quantize", "") != "int8")
        return error_status(ErrorCode::kInvalidGraph, at + "weight_quantize must be \"int8\"");
      input_scale = node.attrs.get_float("bias_input_scale", 0.0f);
      if (!(input_scale > 0.0f) || !std::isnormal(input_scale))
        return error_status(ErrorCode::kInvalidGraph,
                            at + "weight_quantize needs a positive normal bias_input_scale");
      if (node.params.count("bias")) {
        Status s = per_row("bias", "a quantized weight's bias", &bias);
        if (!s.ok()) return s;
      }
    }
    Shape shape = w.shape;
    shape.front() = keep_rows;
    shape.back() = keep_cols;
    const int64_t inner = shape_elements(w.shape) / (rows * cols);  // e.g. kh * kw
    const int64_t row_size = inner * keep_cols;
    const std::string name = node.output + "#w", scale_name = node.output + "#ws",
                      bias_name = node.output + "#b";
    for (const std::string& n : {name, scale_name, bias_name})
      if (constants.count(n) && (n == name || quantize))
        return error_status(ErrorCode::kInvalidGraph,
                            at + "a stored tensor is named '" + n + "', a derived tensor's name");
    ConstTensor derived{quantize ? DType::kI8 : DType::kF32, shape, nullptr};
    ConstTensor derived_scale{DType::kF32, {keep_rows}, nullptr};
    ConstTensor derived_bias{DType::kI32, {keep_rows}, nullptr};
    if (materialize) {
      const float* src = static_cast<const float*>(w.data);
      // row r of the derived weight: its slice, times its multiplier
      auto derive_row = [&](int64_t r, float* dst) {
        const int64_t from_row = source_index(halve_rows, r, keep_rows, rows);
        for (int64_t k = 0; k < inner; ++k) {
          const float* from = src + (from_row * inner + k) * cols;
          float* to = dst + k * keep_cols;
          for (int64_t c = 0; c < keep_cols; ++c)
            to[c] = scale ? from[col_index[c]] * scale[r] : from[col_index[c]];
        }
      };
      if (!quantize) {
        out->storage.emplace_back(static_cast<size_t>(keep_rows * row_size));
        float* dst = out->storage.back().data();
        for (int64_t r = 0; r < keep_rows; ++r) derive_row(r, dst + r * row_size);
        derived.data = dst;
      } else {
        // one float row at a time: no float copy of the whole weight
        std::vector<float> row(static_cast<size_t>(row_size));
        out->storage_i8.emplace_back(static_cast<size_t>(keep_rows * row_size));
        out->storage.emplace_back(static_cast<size_t>(keep_rows));
        int8_t* q = out->storage_i8.back().data();
        float* ws = out->storage.back().data();
        for (int64_t r = 0; r < keep_rows; ++r) {
          derive_row(r, row.data());
          ws[r] = quantize_row(row.data(), row_size, q + r * row_size);
        }
        // bias_q = round_half_even(bias / (input_scale * weight_scale)), saturated to int32
        out->storage_i32.emplace_back(static_cast<size_t>(keep_rows), 0);
        int32_t* bq = out->storage_i32.back().data();
        for (int64_t r = 0; bias && r < keep_rows; ++r) {
          const double v = std::nearbyint(static_cast<double>(bias[r]) /
                                          static_cast<double>(ws[r] * input_scale));
          bq[r] = static_cast<int32_t>(std::min(2147483647.0, std::max(-2147483647.0, v)));
        }
        derived.data = q;
        derived_scale.data = ws;
        derived_bias.data = bq;
      }
    }
    out->constants[name] = derived;
    out->derived_bytes += static_cast<size_t>(shape_elements(shape)) * dtype_size(derived.dtype);
    node.params["weight"] = name;
    if (quantize) {
      out->constants[scale_name] = derived_scale;
      out->constants[bias_name] = derived_bias;
      out->derived_bytes += static_cast<size_t>(keep_rows) * (sizeof(float) + sizeof(int32_t));
      node.params["weight_scale"] = scale_name;
      node.params["bias"] = bias_name;
      // bias_input_scale stays: infer_shapes checks it against the input
      node.attrs.strings.erase("weight_quantize");
    }
    node.params.erase("weight_mul");
    node.attrs.numbers.erase("weight_slice");
    node.attrs.numbers.erase("weight_slice_halves");
  }
  return ok_status();
}

size_t used_weight_bytes(const DerivedWeights& derived) {
  std::unordered_set<std::string> used;
  size_t bytes = 0;
  for (const Node& node : derived.branch.nodes)
    for (const auto& [slot, name] : node.params) {
      auto it = derived.constants.find(name);
      if (it == derived.constants.end() || !used.insert(name).second) continue;
      bytes += static_cast<size_t>(shape_elements(it->second.shape)) * dtype_size(it->second.dtype);
    }
  return bytes;
}

Status infer_shapes(const Branch& branch, const Shape& input_shape, const ConstantMap& constants,
                    std::unordered_map<std::string, TensorInfo>* tensors) {
  const std::string where = "branch '" + branch.name + "': ";
  tensors->clear();
  if (input_shape.size() != 4 || shape_elements(input_shape) <= 0)
    return error_status(
        ErrorCode::kInvalidGraph,
        where + "input shape must be NHWC with positive dims, got " + shape_string(input_shape));
  (*tensors)[branch.input] = TensorInfo{DType::kF32, input_shape};
  const OpRegistry& registry = OpRegistry::instance();
  for (size_t i = 0; i < branch.nodes.size(); ++i) {
    const Node& node = branch.nodes[i];
    const std::string at =
        where + "node " + std::to_string(i) + " (" + node.op + " -> '" + node.output + "'): ";
    const OpDef* op = registry.find(node.op);
    if (!op) return error_status(ErrorCode::kInvalidGraph, at + "unknown op '" + node.op + "'");
    Status schema = check_node_schema(*op, node);
    if (!schema.ok()) return error_status(schema.code, at + schema.message);
    std::vector<TensorInfo> inputs;
    for (const std::string& name : node.inputs) {
      auto it = tensors->find(name);
      if (it == tensors->end())
        return error_status(ErrorCode::kInvalidGraph,
                            at + "input '" + name +
                                "' is not defined by an earlier node (unknown tensor, or a cycle)");
      inputs.push_back(it->second);
    }
    if (node.output.empty())
      return error_status(ErrorCode::kInvalidGraph, at + "node has no output name");
    // a bias quantized at preparation must have used the scale the input really has
    if (node.attrs.has("bias_input_scale") &&
        (inputs.empty() || inputs[0].dtype != DType::kI8 ||
         inputs[0].scale != node.attrs.get_float("bias_input_scale", 0.0f)))
      return error_status(ErrorCode::kInvalidGraph,
                          at + "bias_input_scale is not the scale of the node's int8 input");
    if (tensors->count(node.output))
      return error_status(ErrorCode::kInvalidGraph,
                          at + "tensor '" + node.output + "' is defined twice");
    for (const auto& slot : node.params)
      if (!constants.count(slot.second))
        return error_status(
            ErrorCode::kInvalidGraph,
            at + "param '" + slot.first + "' names unknown constant tensor '" + slot.second + "'");
    TensorInfo output;
    Status status = op->infer(node, inputs, constants, &output);
    if (!status.ok()) return error_status(status.code, at + status.message);
    if (shape_elements(output.shape) <= 0)
      return error_status(ErrorCode::kInvalidGraph,
                          at + "output shape " + shape_string(output.shape) + " is empty");
    (*tensors)[node.output] = output;
  }
  auto out = tensors->find(branch.output);
  if (out == tensors->end())
    return error_status(ErrorCode::kInvalidGraph,
                        where + "output tensor '" + branch.output + "' is never defined");
  if (out->second.dtype != DType::kF32)
    return error_status(ErrorCode::kInvalidGraph,
                        where + "output must be f32 (end an int8 branch with dequantize)");
  return ok_status();
}

}  // namespace adascale
