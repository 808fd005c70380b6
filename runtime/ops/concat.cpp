// concat: joins tensors along the channel (last) axis; all other dims must match. Int8 inputs must
// share one scale/zero point (the exporter requantizes beforehand), so concat never rescales.
// XNNPACK: one strided copy per input into its channel slice of the output.
#include <cstring>

#include "runtime/op_registry.h"

namespace adascale {
namespace {

Status infer(const Node& node, const std::vector<TensorInfo>& inputs, const ConstantMap&,
             TensorInfo* output) {
  if (inputs.empty()) return error_status(ErrorCode::kInvalidGraph, "needs at least one input");
  const TensorInfo& first = inputs[0];
  if (first.dtype == DType::kI32 || first.shape.size() < 2)
    return error_status(ErrorCode::kInvalidGraph, "inputs must be f32/i8 of rank >= 2");
  *output = first;
  output->shape.back() = 0;
  for (const TensorInfo& in : inputs) {
    if (in.dtype != first.dtype || in.shape.size() != first.shape.size())
      return error_status(ErrorCode::kInvalidGraph, "inputs differ in dtype or rank");
    for (size_t d = 0; d + 1 < in.shape.size(); ++d)
      if (in.shape[d] != first.shape[d])
        return error_status(ErrorCode::kInvalidGraph,
                            "inputs differ outside the channel axis: " + shape_string(in.shape) +
                                " vs " + shape_string(first.shape));
    if (in.dtype == DType::kI8 && (in.scale != first.scale || in.zero_point != first.zero_point))
      return error_status(ErrorCode::kInvalidGraph, "int8 inputs must share scale and zero point");
    output->shape.back() += in.shape.back();
  }
  return ok_status();
}

void reference(const BoundNode& b) {
  const size_t elem = dtype_size(b.out_info.dtype);
  const int64_t out_c = b.out_info.shape.back();
  const int64_t rows = shape_elements(b.out_info.shape) / out_c;
  int64_t offset = 0;
  for (size_t i = 0; i < b.in.size(); ++i) {
    const int64_t c = b.in_info[i].shape.back();
    const char* x = static_cast<const char*>(b.in[i]);
    char* y = static_cast<char*>(b.out);
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(y + (r * out_c + offset) * elem, x + r * c * elem, c * elem);
    offset += c;
  }
}

Status xnn_create(const BoundNode& b, XnnOps* ops) {
  const size_t out_c = static_cast<size_t>(b.out_info.shape.back());
  for (const TensorInfo& in : b.in_info) {
    const size_t c = static_cast<size_t>(in.shape.back());
    xnn_operator_t op = nullptr;
    const xnn_status st = in.dtype == DType::kF32 ? xnn_create_copy_nc_x32(c, c, out_c, 0, &op)
                                                  : xnn_create_copy_nc_x8(c, c, out_c, 0, &op);
    ops->ops.push_back(op);
    Status s = xnn_check(st, "create concat copy");
    if (!s.ok()) return s;
  }
  return ok_status();
}

Status xnn_setup(const BoundNode& b, XnnOps* ops, pthreadpool_t threadpool) {
  const size_t elem = dtype_size(b.out_info.dtype);
  const int64_t rows = shape_elements(b.out_info.shape) / b.out_info.shape.back();
  int64_t offset = 0;
  for (size_t i = 0; i < b.in.size(); ++i) {
    char* y = static_cast<char*>(b.out) + offset * elem;
    const xnn_status st = elem == 4
                              ? xnn_setup_copy_nc_x32(ops->ops[i], rows, b.in[i], y, threadpool)
                              : xnn_setup_copy_nc_x8(ops->ops[i], rows, b.in[i], y, threadpool);
    Status s = xnn_check(st, "setup concat copy");
    if (!s.ok()) return s;
    offset += b.in_info[i].shape.back();
  }
  return ok_status();
}

}  // namespace

ADASCALE_OP_FACTORY(concat) { return OpDef{"concat", infer, reference, xnn_create, xnn_setup}; }

}  // namespace adascale
