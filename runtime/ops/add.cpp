// add: elementwise sum of two same-shape tensors (residual connections), fused none/relu/relu6.
// Int8: each input is rescaled to the output scale in float, then rounded once.
#include <algorithm>

#include "runtime/op_registry.h"
#include "runtime/quant.h"

namespace adascale {
namespace {

Status infer(const Node& node, const std::vector<TensorInfo>& inputs, const ConstantMap&,
             TensorInfo* output) {
  Status s = check_input_count(node, inputs, 2);
  if (!s.ok()) return s;
  if (inputs[0].dtype != inputs[1].dtype || inputs[0].dtype == DType::kI32)
    return error_status(ErrorCode::kInvalidGraph, "inputs must both be f32 or both i8");
  if (inputs[0].shape != inputs[1].shape)
    return error_status(ErrorCode::kInvalidGraph,
                        "input shapes differ: " + shape_string(inputs[0].shape) + " vs " +
                            shape_string(inputs[1].shape));
  Activation act;
  s = parse_activation(node.attrs, &act);
  if (!s.ok()) return s;
  output->dtype = inputs[0].dtype;
  output->shape = inputs[0].shape;
  return output->dtype == DType::kI8 ? read_output_quant(node, output) : ok_status();
}

void reference(const BoundNode& b) {
  const int64_t count = shape_elements(b.out_info.shape);
  Activation act;
  parse_activation(b.node->attrs, &act);
  if (b.out_info.dtype == DType::kF32) {
    float lo, hi;
    activation_range_f32(act, &lo, &hi);
    const float* x0 = static_cast<const float*>(b.in[0]);
    const float* x1 = static_cast<const float*>(b.in[1]);
    float* y = static_cast<float*>(b.out);
    for (int64_t i = 0; i < count; ++i) y[i] = std::min(std::max(x0[i] + x1[i], lo), hi);
    return;
  }
  const TensorInfo &a = b.in_info[0], &c = b.in_info[1], &out = b.out_info;
  int32_t lo, hi;
  activation_range_i8(act, out.scale, out.zero_point, &lo, &hi);
  const float a_multiplier = a.scale / out.scale, c_multiplier = c.scale / out.scale;
  const int8_t* x0 = static_cast<const int8_t*>(b.in[0]);
  const int8_t* x1 = static_cast<const int8_t*>(b.in[1]);
  int8_t* y = static_cast<int8_t*>(b.out);
  for (int64_t i = 0; i < count; ++i) {
    const float value = static_cast<float>(x0[i] - a.zero_point) * a_multiplier +
                        static_cast<float>(x1[i] - c.zero_point) * c_multiplier;
    y[i] = requantize(value, out.zero_point, lo, hi);
  }
}

Status xnn_create(const BoundNode& b, XnnOps* ops) {
  Activation act;
  parse_activation(b.node->attrs, &act);
  xnn_operator_t op = nullptr;
  xnn_status st;
  if (b.out_info.dtype == DType::kF32) {
    float lo, hi;
    activation_range_f32(act, &lo, &hi);
    st = xnn_create_add_nd_f32(lo, hi, 0, &op);
  } else {
    const TensorInfo &a = b.in_info[0], &c = b.in_info[1], &out = b.out_info;
    int32_t lo, hi;
    activation_range_i8(act, out.scale, out.zero_point, &lo, &hi);
    st = xnn_create_add_nd_qs8(static_cast<int8_t>(a.zero_point), a.scale,
                               static_cast<int8_t>(c.zero_point), c.scale,
                               static_cast<int8_t>(out.zero_point), out.scale,
                               static_cast<int8_t>(lo), static_cast<int8_t>(hi), 0, &op);
  }
  ops->ops.push_back(op);
  return xnn_check(st, "create add");
}

Status xnn_setup(const BoundNode& b, XnnOps* ops, pthreadpool_t threadpool) {
  // Same shapes on both sides: present them as one flat dimension.
  const size_t shape[1] = {static_cast<size_t>(shape_elements(b.out_info.shape))};
  if (b.out_info.dtype == DType::kF32)
    return xnn_check(
        xnn_setup_add_nd_f32(ops->ops[0], 1, shape, 1, shape, static_cast<const float*>(b.in[0]),
                             static_cast<const float*>(b.in[1]), static_cast<float*>(b.out),
                             threadpool),
        "setup add");
  return xnn_check(
      xnn_setup_add_nd_qs8(ops->ops[0], 1, shape, 1, shape, static_cast<const int8_t*>(b.in[0]),
                           static_cast<const int8_t*>(b.in[1]), static_cast<int8_t*>(b.out),
                           threadpool),
      "setup add");
}

}  // namespace

ADASCALE_OP_FACTORY(add) {
  OpDef op{"add", infer, reference, xnn_create, xnn_setup};
  op.attrs = join_attrs({kActivationAttrs, kOutputQuantAttrs});
  op.params = {};
  return op;
}

}  // namespace adascale
