// dequantize: int8 -> f32, x = (q - zero_point) * scale, with the input's quantization.
#include "runtime/op_registry.h"

namespace adascale {
namespace {

Status infer(const Node& node, const std::vector<TensorInfo>& inputs, const ConstantMap&,
             TensorInfo* output) {
  Status s = check_input_count(node, inputs, 1);
  if (!s.ok()) return s;
  if (inputs[0].dtype != DType::kI8)
    return error_status(ErrorCode::kInvalidGraph, "input must be i8");
  output->dtype = DType::kF32;
  output->shape = inputs[0].shape;
  return ok_status();
}

void reference(const BoundNode& b) {
  const TensorInfo& in = b.in_info[0];
  const int64_t count = shape_elements(in.shape);
  const int8_t* x = static_cast<const int8_t*>(b.in[0]);
  float* y = static_cast<float*>(b.out);
  for (int64_t i = 0; i < count; ++i) y[i] = static_cast<float>(x[i] - in.zero_point) * in.scale;
}

Status xnn_create(const BoundNode& b, XnnOps* ops) {
  const TensorInfo& in = b.in_info[0];
  const size_t c = static_cast<size_t>(in.shape.back());
  xnn_operator_t op = nullptr;
  const xnn_status st =
      xnn_create_convert_nc_qs8_f32(c, c, c, in.scale, static_cast<int8_t>(in.zero_point), 0, &op);
  ops->ops.push_back(op);
  return xnn_check(st, "create dequantize");
}

Status xnn_setup(const BoundNode& b, XnnOps* ops, pthreadpool_t threadpool) {
  const size_t rows = shape_elements(b.in_info[0].shape) / b.in_info[0].shape.back();
  return xnn_check(
      xnn_setup_convert_nc_qs8_f32(ops->ops[0], rows, static_cast<const int8_t*>(b.in[0]),
                                   static_cast<float*>(b.out), threadpool),
      "setup dequantize");
}

}  // namespace

ADASCALE_OP_FACTORY(dequantize) {
  return OpDef{"dequantize", infer, reference, xnn_create, xnn_setup};
}

}  // namespace adascale
