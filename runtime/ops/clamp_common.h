// Shared body of relu and relu6: an elementwise clamp whose int8 form keeps the input's
// quantization (the zero point is real 0, so relu is max(q, zero_point)).
#pragma once

#include <algorithm>

#include "runtime/op_registry.h"
#include "runtime/quant.h"

namespace adascale {
namespace clamp_op {

inline Status infer(const Node& node, const std::vector<TensorInfo>& inputs, const ConstantMap&,
                    TensorInfo* output) {
  Status s = check_input_count(node, inputs, 1);
  if (!s.ok()) return s;
  if (inputs[0].dtype == DType::kI32)
    return error_status(ErrorCode::kInvalidGraph, "input must be f32/i8");
  *output = inputs[0];
  return ok_status();
}

inline int64_t rows(const TensorInfo& info) {
  return shape_elements(info.shape) / info.shape.back();
}

inline void reference(const BoundNode& b, Activation act) {
  const TensorInfo& in = b.in_info[0];
  const int64_t count = shape_elements(in.shape);
  if (in.dtype == DType::kF32) {
    float lo, hi;
    activation_range_f32(act, &lo, &hi);
    const float* x = static_cast<const float*>(b.in[0]);
    float* y = static_cast<float*>(b.out);
    for (int64_t i = 0; i < count; ++i) y[i] = std::min(std::max(x[i], lo), hi);
    return;
  }
  int32_t lo, hi;
  activation_range_i8(act, in.scale, in.zero_point, &lo, &hi);
  const int8_t* x = static_cast<const int8_t*>(b.in[0]);
  int8_t* y = static_cast<int8_t*>(b.out);
  for (int64_t i = 0; i < count; ++i)
    y[i] = static_cast<int8_t>(std::min<int32_t>(std::max<int32_t>(x[i], lo), hi));
}

inline Status xnn_create(const BoundNode& b, XnnOps* ops, Activation act) {
  const TensorInfo& in = b.in_info[0];
  const size_t channels = static_cast<size_t>(in.shape.back());
  xnn_operator_t op = nullptr;
  xnn_status st;
  if (in.dtype == DType::kF32) {
    float lo, hi;
    activation_range_f32(act, &lo, &hi);
    st = xnn_create_clamp_nc_f32(channels, channels, channels, lo, hi, 0, &op);
  } else {
    int32_t lo, hi;
    activation_range_i8(act, in.scale, in.zero_point, &lo, &hi);
    st = xnn_create_clamp_nc_s8(channels, channels, channels, static_cast<int8_t>(lo),
                                static_cast<int8_t>(hi), 0, &op);
  }
  ops->ops.push_back(op);
  return xnn_check(st, "create clamp");
}

inline Status xnn_setup(const BoundNode& b, XnnOps* ops, pthreadpool_t threadpool) {
  const size_t batch = static_cast<size_t>(rows(b.in_info[0]));
  if (b.in_info[0].dtype == DType::kF32)
    return xnn_check(xnn_setup_clamp_nc_f32(ops->ops[0], batch, static_cast<const float*>(b.in[0]),
                                            static_cast<float*>(b.out), threadpool),
                     "setup clamp");
  return xnn_check(xnn_setup_clamp_nc_s8(ops->ops[0], batch, static_cast<const int8_t*>(b.in[0]),
                                         static_cast<int8_t*>(b.out), threadpool),
                   "setup clamp");
}

}  // namespace clamp_op
}  // namespace adascale
