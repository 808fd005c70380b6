// fully_connected: y[n, o] = sum_i x[n, i] * weight[o, i] + bias[o], fused none/relu/relu6.
// Inputs of rank > 2 are read as [N, rest] in NHWC order. Int8 uses per-output-channel weight
// scales; XNNPACK's qs8 fully-connected has only one scale, so the int8 kernel is a 1x1 qc8 conv.
#include <algorithm>

#include "runtime/op_registry.h"
#include "runtime/quant.h"

namespace adascale {
namespace {

int64_t features(const TensorInfo& in) {
  int64_t count = 1;
  for (size_t i = 1; i < in.shape.size(); ++i) count *= in.shape[i];
  return count;
}

Status infer(const Node& node, const std::vector<TensorInfo>& inputs, const ConstantMap& constants,
             TensorInfo* output) {
  Status s = check_input_count(node, inputs, 1);
  if (!s.ok()) return s;
  const TensorInfo& in = inputs[0];
  if (in.dtype == DType::kI32 || in.shape.size() < 2)
    return error_status(ErrorCode::kInvalidGraph, "input must be f32/i8 of rank >= 2");
  Activation act;
  s = parse_activation(node.attrs, &act);
  if (!s.ok()) return s;
  const ConstTensor* weight = nullptr;
  s = require_param(node, constants, "weight", in.dtype, {}, &weight);
  if (!s.ok()) return s;
  if (weight->shape.size() != 2 || weight->shape[1] != features(in) || weight->shape[0] < 1)
    return error_status(ErrorCode::kInvalidGraph, "weight shape " + shape_string(weight->shape) +
                                                      " does not match [O," +
                                                      std::to_string(features(in)) + "]");
  const int64_t out_c = weight->shape[0];
  const bool int8 = in.dtype == DType::kI8;
  if (node.params.count("bias")) {
    s = require_param(node, constants, "bias", int8 ? DType::kI32 : DType::kF32, {out_c}, nullptr);
    if (!s.ok()) return s;
  }
  output->dtype = in.dtype;
  output->shape = {in.shape[0], out_c};
  if (!int8) return ok_status();
  s = require_param(node, constants, "weight_scale", DType::kF32, {out_c}, nullptr);
  return s.ok() ? read_output_quant(node, output) : s;
}

void reference(const BoundNode& b) {
  const TensorInfo& in = b.in_info[0];
  const TensorInfo& out = b.out_info;
  const int64_t batch = out.shape[0], out_c = out.shape[1], in_c = features(in);
  Activation act;
  parse_activation(b.node->attrs, &act);
  if (in.dtype == DType::kF32) {
    const float* x = static_cast<const float*>(b.in[0]);
    const float* w = b.param_data<float>("weight");
    const float* bias = b.param_data<float>("bias");
    float lo, hi;
    activation_range_f32(act, &lo, &hi);
    float* y = static_cast<float*>(b.out);
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t o = 0; o < out_c; ++o) {
        float acc = 0.0f;
        for (int64_t i = 0; i < in_c; ++i) acc += x[n * in_c + i] * w[o * in_c + i];
        y[n * out_c + o] = std::min(std::max(acc + (bias ? bias[o] : 0.0f), lo), hi);
      }
    return;
  }
  const int8_t* x = static_cast<const int8_t*>(b.in[0]);
  const int8_t* w = b.param_data<int8_t>("weight");
  const int32_t* bias = b.param_data<int32_t>("bias");
  const float* wscale = b.param_data<float>("weight_scale");
  int32_t lo, hi;
  activation_range_i8(act, out.scale, out.zero_point, &lo, &hi);
  int8_t* y = static_cast<int8_t*>(b.out);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t o = 0; o < out_c; ++o) {
      int32_t acc = bias ? bias[o] : 0;
      for (int64_t i = 0; i < in_c; ++i)
        acc += (static_cast<int32_t>(x[n * in_c + i]) - in.zero_point) * w[o * in_c + i];
      const float multiplier = in.scale * wscale[o] / out.scale;
      y[n * out_c + o] = requantize(static_cast<float>(acc) * multiplier, out.zero_point, lo, hi);
    }
}

Status xnn_create(const BoundNode& b, XnnOps* ops) {
  const TensorInfo& in = b.in_info[0];
  const TensorInfo& out = b.out_info;
  const size_t in_c = static_cast<size_t>(features(in)), out_c = static_cast<size_t>(out.shape[1]);
  Activation act;
  parse_activation(b.node->attrs, &act);
  xnn_operator_t op = nullptr;
  xnn_status st;
  if (in.dtype == DType::kF32) {
    float lo, hi;
    activation_range_f32(act, &lo, &hi);
    st = xnn_create_fully_connected_nc_f32(in_c, out_c, in_c, out_c, b.param_data<float>("weight"),
                                           b.param_data<float>("bias"), lo, hi, 0, &op);
  } else {
    int32_t lo, hi;
    activation_range_i8(act, out.scale, out.zero_point, &lo, &hi);
    st = xnn_create_convolution2d_nhwc_qc8(
        0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, in_c, out_c, in_c, out_c,
        static_cast<int8_t>(in.zero_point), in.scale, b.param_data<float>("weight_scale"),
        b.param_data<int8_t>("weight"), b.param_data<int32_t>("bias"),
        static_cast<int8_t>(out.zero_point), out.scale, static_cast<int8_t>(lo),
        static_cast<int8_t>(hi), 0, &op);
  }
  ops->ops.push_back(op);
  return xnn_check(st, "create fully_connected");
}

Status xnn_setup(const BoundNode& b, XnnOps* ops, pthreadpool_t threadpool) {
  const size_t batch = static_cast<size_t>(b.in_info[0].shape[0]);
  if (b.in_info[0].dtype == DType::kF32)
    return xnn_check(
        xnn_setup_fully_connected_nc_f32(ops->ops[0], batch, static_cast<const float*>(b.in[0]),
                                         static_cast<float*>(b.out), threadpool),
        "setup fully_connected");
  return xnn_check(xnn_setup_convolution2d_nhwc_qc8(ops->ops[0], batch, 1, 1,
                                                    static_cast<const int8_t*>(b.in[0]),
                                                    static_cast<int8_t*>(b.out), threadpool),
                   "setup fully_connected");
}

}  // namespace

ADASCALE_OP_FACTORY(fully_connected) {
  OpDef op{"fully_connected", infer, reference, xnn_create, xnn_setup};
  op.attrs = join_attrs({kActivationAttrs, kOutputQuantAttrs, kDerivedWeightAttrs});
  op.params = {"weight", "bias", "weight_scale", "weight_mul"};
  return op;
}

}  // namespace adascale
