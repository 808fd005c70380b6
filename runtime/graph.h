// Branch graph IR: a branch is a topologically ordered list of nodes over named tensors.
// Activations are NHWC (or [N, C] after flatten/fully_connected), float32 or int8 with a per-tensor
// scale and zero point. Constant tensors (weights) are referenced by name through node params.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace adascale {

// Error codes shared by the whole runtime; the C API mirrors them one to one.
enum class ErrorCode : int {
  kOk = 0,
  kIo = 1,
  kFormat = 2,
  kChecksum = 3,
  kSchemaVersion = 4,
  kOutOfRange = 5,
  kInvalidGraph = 6,
  kNotFound = 7,
  kInvalidArgument = 8,
  kUnsupported = 9,
  kBackend = 10,
  kOutOfMemory = 11,
  kNoBranchSelected = 12,
  kInCallback = 13,
};

struct Status {
  ErrorCode code = ErrorCode::kOk;
  std::string message;
  bool ok() const { return code == ErrorCode::kOk; }
};

inline Status ok_status() { return {}; }
inline Status error_status(ErrorCode code, std::string message) {
  return Status{code, std::move(message)};
}

enum class DType : uint8_t { kF32, kI8, kI32 };
const char* dtype_name(DType dtype);
bool parse_dtype(const std::string& text, DType* dtype);
size_t dtype_size(DType dtype);

using Shape = std::vector<int64_t>;
// Element count, or -1 when a dimension is negative or the product overflows.
int64_t shape_elements(const Shape& shape);
std::string shape_string(const Shape& shape);

// An activation tensor as seen by shape inference and kernels.
struct TensorInfo {
  DType dtype = DType::kF32;
  Shape shape;
  float scale = 1.0f;      // int8 only: real = scale * (q - zero_point)
  int32_t zero_point = 0;  // int8 only
  size_t bytes() const { return static_cast<size_t>(shape_elements(shape)) * dtype_size(dtype); }
};

// A constant (weight) tensor; data points into the mapped bundle or test-owned memory.
struct ConstTensor {
  DType dtype = DType::kF32;
  Shape shape;
  const void* data = nullptr;
};
using ConstantMap = std::unordered_map<std::string, ConstTensor>;

// Node attributes: numbers (scalars or lists, stored as doubles which hold int64 below 2^53 and
// every float exactly) and strings.
struct Attrs {
  std::map<std::string, std::vector<double>> numbers;
  std::map<std::string, std::string> strings;

  bool has(const std::string& key) const { return numbers.count(key) || strings.count(key); }
  int64_t get_int(const std::string& key, int64_t fallback) const;
  std::vector<int64_t> get_ints(const std::string& key, std::vector<int64_t> fallback) const;
  float get_float(const std::string& key, float fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  Attrs& set(const std::string& key, double value);
  Attrs& set(const std::string& key, const std::vector<int64_t>& values);
  Attrs& set(const std::string& key, const std::string& value);
  Attrs& set(const std::string& key, const char* value) { return set(key, std::string(value)); }
};

struct Node {
  std::string op;
  std::vector<std::string> inputs;            // activation tensors
  std::string output;                         // activation tensor defined by this node
  std::map<std::string, std::string> params;  // slot ("weight", "bias", ...) -> constant name
  Attrs attrs;
};

struct Branch {
  std::string name;
  std::string input = "input";  // NHWC float32, shape given by the bundle's input description
  std::string output;           // float32 logits [N, classes]
  std::vector<Node> nodes;
  std::string costs_json = "{}";  // free-form object written by the exporter
};

enum class Activation { kNone, kRelu, kRelu6 };
// Reads attrs["activation"] ("none" | "relu" | "relu6"); absent means none.
Status parse_activation(const Attrs& attrs, Activation* activation);
void activation_range_f32(Activation activation, float* lo, float* hi);

// Weights derived when a branch is prepared, so branches of one bundle can share stored tensors.
// A conv2d / fully_connected node with a float32 weight may name a larger stored tensor and
//   attrs.weight_slice = [O', I']  use its leading O' rows (axis 0) and the leading I' entries of
//                                  its last axis (input channels per group; inputs of an fc);
//   attrs.weight_slice_halves = [R, C]  (with weight_slice; 0 or 1 each) where R (C) is 1, axis 0
//                                  (the last axis) keeps the leading O'/2 entries of its first
//                                  half and the leading O' - O'/2 of its second half instead:
//                                  the channels a narrower fire module keeps of its two expands;
//   params.weight_mul  (f32 [O'])  multiply each output row (a BatchNorm scale folded here).
// An int8 node (one with out_scale) may quantize such a float32 weight itself, so an int8 twin
// stores no weights of its own:
//   attrs.weight_quantize = "int8"    per-output-channel symmetric int8 of the derived weight
//                                     (docs/int8-arithmetic.md), giving weight and weight_scale;
//   attrs.bias_input_scale            the scale of the node's int8 input (infer_shapes checks
//                                     it): params.bias (float32 [O'], optional) becomes the
//                                     int32 bias at that scale.
// derive_weights rewrites such nodes to name plain derived tensors ("<output>#w", and "#ws", "#b"
// when quantized), leaving the others untouched; `constants` of the result hold the branch's own
// constants plus the derived ones. With materialize false only shapes are derived (data null),
// for validation.
struct DerivedWeights {
  DerivedWeights() = default;
  // constants point into storage: a copy would point into the original's
  DerivedWeights(const DerivedWeights&) = delete;
  DerivedWeights& operator=(const DerivedWeights&) = delete;
  DerivedWeights(DerivedWeights&&) = default;  // moved vectors keep their buffers
  DerivedWeights& operator=(DerivedWeights&&) = default;
  Branch branch;
  ConstantMap constants;
  // backing the derived tensors
  std::vector<std::vector<float>> storage;
  std::vector<std::vector<int8_t>> storage_i8;
  std::vector<std::vector<int32_t>> storage_i32;
  size_t derived_bytes = 0;
};
Status derive_weights(const Branch& branch, const ConstantMap& constants, bool materialize,
                      DerivedWeights* out);
// bytes of the constants the derived branch's nodes name (each once): what a prepared branch holds
size_t used_weight_bytes(const DerivedWeights& derived);

// Infers every activation tensor of `branch` for an NHWC float32 input of `input_shape` and checks
// that the graph is well formed: known ops, tensors defined before use and only once (which also
// rules out cycles), params present with the right dtype and shape, channel counts consistent.
Status infer_shapes(const Branch& branch, const Shape& input_shape, const ConstantMap& constants,
                    std::unordered_map<std::string, TensorInfo>* tensors);

}  // namespace adascale
