// quantize: f32 -> int8 with attrs out_scale / out_zero_point:
// q = clamp(round_half_even(x * (1 / scale)) + zero_point, -128, 127). Multiplying by the float
// reciprocal (not dividing) is what XNNPACK's f32->qs8 convert does.
#include "runtime/op_registry.h"
#include "runtime/quant.h"

namespace adascale {
namespace {

Status infer(const Node& node, const std::vector<TensorInfo>& inputs, const ConstantMap&,
             TensorInfo* output) {
  Status s = check_input_count(node, inputs, 1);
  if (!s.ok()) return s;
  if (inputs[0].dtype != DType::kF32)
    return error_status(ErrorCode::kInvalidGraph, "input must be f32");
  output->dtype = DType::kI8;
  output->shape = inputs[0].shape;
  return read_output_quant(node, output);
}

void reference(const BoundNode& b) {
  const TensorInfo& out = b.out_info;
  const float inv_scale = 1.0f / out.scale;
  const int64_t count = shape_elements(out.shape);
  const float* x = static_cast<const float*>(b.in[0]);
  int8_t* y = static_cast<int8_t*>(b.out);
  for (int64_t i = 0; i < count; ++i)
    y[i] = requantize(x[i] * inv_scale, out.zero_point, -128, 127);
}

Status xnn_create(const BoundNode& b, XnnOps* ops) {
  const TensorInfo& out = b.out_info;
  const size_t c = static_cast<size_t>(out.shape.back());
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_convert_nc_f32_qs8(
      c, c, c, out.scale, static_cast<int8_t>(out.zero_point), -128, 127, 0, &op);
  ops->ops.push_back(op);
  return xnn_check(st, "create quantize");
}

Status xnn_setup(const BoundNode& b, XnnOps* ops, pthreadpool_t threadpool) {
  const size_t rows = shape_elements(b.out_info.shape) / b.out_info.shape.back();
  return xnn_check(
      xnn_setup_convert_nc_f32_qs8(ops->ops[0], rows, static_cast<const float*>(b.in[0]),
                                   static_cast<int8_t*>(b.out), threadpool),
      "setup quantize");
}

}  // namespace

ADASCALE_OP_FACTORY(quantize) {
  OpDef op{"quantize", infer, reference, xnn_create, xnn_setup};
  op.attrs = kOutputQuantAttrs;
  op.params = {};
  return op;
}

}  // namespace adascale
