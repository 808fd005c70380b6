#include "runtime/op_registry.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace adascale {

#define ADASCALE_OP(op_name) OpDef make_op_##op_name();
#include "runtime/ops/op_list.h"
#undef ADASCALE_OP

OpRegistry::OpRegistry() {
#define ADASCALE_OP(op_name) ops_.push_back(make_op_##op_name());
#include "runtime/ops/op_list.h"
#undef ADASCALE_OP
  // Registering a name twice is a programming error caught by every test run.
  for (size_t i = 0; i < ops_.size(); ++i)
    for (size_t j = i + 1; j < ops_.size(); ++j)
      if (ops_[i].name == ops_[j].name) std::abort();
}

const OpRegistry& OpRegistry::instance() {
  static const OpRegistry registry;
  return registry;
}

const OpDef* OpRegistry::find(const std::string& name) const {
  for (const OpDef& op : ops_)
    if (op.name == name) return &op;
  return nullptr;
}

const ConstTensor* BoundNode::param(const std::string& slot) const {
  auto it = node->params.find(slot);
  if (it == node->params.end()) return nullptr;
  auto found = constants->find(it->second);
  return found == constants->end() ? nullptr : &found->second;
}

XnnOps::~XnnOps() {
  for (xnn_operator_t op : ops)
    if (op) xnn_delete_operator(op);
}

Status XnnOps::run(const BoundNode& bound, pthreadpool_t threadpool) {
  if (arch) {
    arch->run(bound, threadpool);
    return ok_status();
  }
  for (xnn_operator_t op : ops) {
    Status s = xnn_check(xnn_run_operator(op, threadpool), "run operator");
    if (!s.ok()) return s;
  }
  return ok_status();
}

Status check_input_count(const Node& node, const std::vector<TensorInfo>& inputs, size_t count) {
  if (inputs.size() != count)
    return error_status(
        ErrorCode::kInvalidGraph,
        "expects " + std::to_string(count) + " input(s), got " + std::to_string(inputs.size()));
  return ok_status();
}

Status require_param(const Node& node, const ConstantMap& constants, const std::string& slot,
                     DType dtype, const Shape& shape, const ConstTensor** tensor) {
  auto it = node.params.find(slot);
  if (it == node.params.end())
    return error_status(ErrorCode::kInvalidGraph, "missing param '" + slot + "'");
  auto found = constants.find(it->second);
  if (found == constants.end())
    return error_status(ErrorCode::kInvalidGraph, "unknown constant '" + it->second + "'");
  const ConstTensor& t = found->second;
  if (t.dtype != dtype)
    return error_status(ErrorCode::kInvalidGraph, "param '" + slot + "' ('" + it->second +
                                                      "') must be " + dtype_name(dtype) + ", is " +
                                                      dtype_name(t.dtype));
  if (!shape.empty() && t.shape != shape)
    return error_status(ErrorCode::kInvalidGraph, "param '" + slot + "' ('" + it->second +
                                                      "') must have shape " + shape_string(shape) +
                                                      ", has " + shape_string(t.shape));
  if (tensor) *tensor = &t;
  return ok_status();
}

const std::vector<AttrSpec> kActivationAttrs = {{"activation", AttrKind::kString}};
const std::vector<AttrSpec> kOutputQuantAttrs = {{"out_scale", AttrKind::kFloat},
                                                 {"out_zero_point", AttrKind::kInt}};
const std::vector<AttrSpec> kDerivedWeightAttrs = {{"weight_slice", AttrKind::kInts},
                                                   {"weight_slice_halves", AttrKind::kInts},
                                                   {"weight_quantize", AttrKind::kString},
                                                   {"bias_input_scale", AttrKind::kFloat}};

std::vector<AttrSpec> window_attrs(const char* kernel_key) {
  return {{kernel_key, AttrKind::kInts}, {"stride", AttrKind::kInts}, {"pad", AttrKind::kInts}};
}

std::vector<AttrSpec> join_attrs(std::initializer_list<std::vector<AttrSpec>> groups) {
  std::vector<AttrSpec> all;
  for (const auto& group : groups) all.insert(all.end(), group.begin(), group.end());
  return all;
}

namespace {

// lists longer than any op needs (windows, slices) are refused before anything iterates them
constexpr size_t kMaxAttrListLength = 16;

const char* kind_name(AttrKind kind) {
  switch (kind) {
    case AttrKind::kInt:
      return "an integer";
    case AttrKind::kInts:
      return "a list of integers";
    case AttrKind::kFloat:
      return "a finite number";
    case AttrKind::kString:
      return "a string";
  }
  return "?";
}

bool integral(double v) { return v >= -9.0e15 && v <= 9.0e15 && v == std::floor(v); }

bool has_kind(const Attrs& attrs, const std::string& key, AttrKind kind) {
  if (kind == AttrKind::kString) return attrs.strings.count(key) && !attrs.numbers.count(key);
  if (attrs.strings.count(key)) return false;
  const std::vector<double>& values = attrs.numbers.at(key);
  switch (kind) {
    case AttrKind::kInt:
      return values.size() == 1 && integral(values[0]);
    case AttrKind::kInts:
      return !values.empty() && values.size() <= kMaxAttrListLength &&
             std::all_of(values.begin(), values.end(), integral);
    case AttrKind::kFloat:
      return values.size() == 1 && std::isfinite(values[0]);
    case AttrKind::kString:
      break;
  }
  return false;
}

}  // namespace

Status check_node_schema(const OpDef& op, const Node& node) {
  auto check = [&](const std::string& key) {
    for (const AttrSpec& spec : op.attrs)
      if (key == spec.name)
        return has_kind(node.attrs, key, spec.kind)
                   ? ok_status()
                   : error_status(ErrorCode::kInvalidGraph,
                                  "attr '" + key + "' must be " + kind_name(spec.kind));
    return error_status(ErrorCode::kInvalidGraph, "unknown attr '" + key + "' for op " + op.name);
  };
  for (const auto& kv : node.attrs.numbers) {
    Status s = check(kv.first);
    if (!s.ok()) return s;
  }
  for (const auto& kv : node.attrs.strings) {
    Status s = check(kv.first);
    if (!s.ok()) return s;
  }
  for (const auto& slot : node.params)
    if (std::find(op.params.begin(), op.params.end(), slot.first) == op.params.end())
      return error_status(ErrorCode::kInvalidGraph,
                          "unknown param slot '" + slot.first + "' for op " + op.name);
  return ok_status();
}

Status xnn_check(xnn_status status, const char* what) {
  if (status == xnn_status_success) return ok_status();
  return error_status(ErrorCode::kBackend, std::string("XNNPACK ") + what + " failed with status " +
                                               std::to_string(static_cast<int>(status)));
}

Status read_output_quant(const Node& node, TensorInfo* output) {
  const float scale = node.attrs.get_float("out_scale", 0.0f);
  const int64_t zero_point = node.attrs.get_int("out_zero_point", 0);
  // requantization multiplies input and weight scales and divides by this one: within
  // [1e-12, 1e12] every such product stays a normal float
  if (!(scale >= 1e-12f && scale <= 1e12f))
    return error_status(ErrorCode::kInvalidGraph,
                        "int8 output needs attr out_scale in [1e-12, 1e12]");
  if (zero_point < -128 || zero_point > 127)
    return error_status(ErrorCode::kInvalidGraph, "out_zero_point must be in [-128, 127]");
  output->scale = scale;
  output->zero_point = static_cast<int32_t>(zero_point);
  return ok_status();
}

Status read_window(const Node& node, const char* kernel_key, Window2d* w) {
  const auto kernel = node.attrs.get_ints(kernel_key, {});
  const auto stride = node.attrs.get_ints("stride", {1, 1});
  const auto pad = node.attrs.get_ints("pad", {0, 0, 0, 0});
  if (kernel.size() != 2 || stride.size() != 2 || pad.size() != 4)
    return error_status(ErrorCode::kInvalidGraph,
                        std::string("attrs need ") + kernel_key +
                            " [h,w], stride [h,w], pad [top,left,bottom,right]");
  *w = Window2d{kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1], pad[2], pad[3]};
  if (w->kh < 1 || w->kw < 1 || w->sh < 1 || w->sw < 1 || w->pt < 0 || w->pl < 0 || w->pb < 0 ||
      w->pr < 0 || w->kh > 65536 || w->kw > 65536 || w->sh > 65536 || w->sw > 65536 ||
      w->pt > 65536 || w->pl > 65536 || w->pb > 65536 || w->pr > 65536)
    return error_status(ErrorCode::kInvalidGraph, "window sizes out of range");
  return ok_status();
}

int64_t window_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad_before,
                           int64_t pad_after) {
  const int64_t padded = in + pad_before + pad_after;
  return padded < kernel ? 0 : (padded - kernel) / stride + 1;
}

}  // namespace adascale
