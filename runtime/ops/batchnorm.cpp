// batchnorm: inference-time per-channel affine y = x * scale[c] + shift[c] (f32). The exporter
// normally folds BN into the preceding conv; this op covers graphs where that is not possible.
// XNNPACK runs it as a 1x1 depthwise convolution with weight = scale and bias = shift.
#include <cmath>

#include "runtime/op_registry.h"

namespace adascale {
namespace {

Status infer(const Node& node, const std::vector<TensorInfo>& inputs, const ConstantMap& constants,
             TensorInfo* output) {
  Status s = check_input_count(node, inputs, 1);
  if (!s.ok()) return s;
  const TensorInfo& in = inputs[0];
  if (in.dtype != DType::kF32 || in.shape.size() != 4)
    return error_status(ErrorCode::kInvalidGraph, "input must be f32 NHWC");
  const Shape channels{in.shape[3]};
  s = require_param(node, constants, "scale", DType::kF32, channels, nullptr);
  if (s.ok()) s = require_param(node, constants, "shift", DType::kF32, channels, nullptr);
  *output = in;
  return s;
}

void reference(const BoundNode& b) {
  const Shape& shape = b.in_info[0].shape;
  const int64_t channels = shape[3], pixels = shape_elements(shape) / channels;
  const float* scale = b.param_data<float>("scale");
  const float* shift = b.param_data<float>("shift");
  const float* x = static_cast<const float*>(b.in[0]);
  float* y = static_cast<float*>(b.out);
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t c = 0; c < channels; ++c)
      y[p * channels + c] = x[p * channels + c] * scale[c] + shift[c];
}

Status xnn_create(const BoundNode& b, XnnOps* ops) {
  const size_t channels = static_cast<size_t>(b.in_info[0].shape[3]);
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_convolution2d_nhwc_f32(
      0, 0, 0, 0, 1, 1, 1, 1, 1, 1, static_cast<uint32_t>(channels), 1, 1, channels, channels,
      b.param_data<float>("scale"), b.param_data<float>("shift"), -INFINITY, INFINITY, 0, &op);
  ops->ops.push_back(op);
  return xnn_check(st, "create batchnorm");
}

Status xnn_setup(const BoundNode& b, XnnOps* ops, pthreadpool_t threadpool) {
  const Shape& s = b.in_info[0].shape;
  return xnn_check(xnn_setup_convolution2d_nhwc_f32(ops->ops[0], s[0], s[1], s[2],
                                                    static_cast<const float*>(b.in[0]),
                                                    static_cast<float*>(b.out), threadpool),
                   "setup batchnorm");
}

}  // namespace

ADASCALE_OP_FACTORY(batchnorm) {
  OpDef op{"batchnorm", infer, reference, xnn_create, xnn_setup};
  op.attrs = {};
  op.params = {"scale", "shift"};
  return op;
}

}  // namespace adascale
