// softmax: over the last axis, f32 only; max-subtracted for stability.
#include <algorithm>
#include <cmath>

#include "runtime/op_registry.h"

namespace adascale {
namespace {

Status infer(const Node& node, const std::vector<TensorInfo>& inputs, const ConstantMap&,
             TensorInfo* output) {
  Status s = check_input_count(node, inputs, 1);
  if (!s.ok()) return s;
  if (inputs[0].dtype != DType::kF32 || inputs[0].shape.size() < 2)
    return error_status(ErrorCode::kInvalidGraph, "input must be f32 of rank >= 2");
  *output = inputs[0];
  return ok_status();
}

void reference(const BoundNode& b) {
  const int64_t c = b.out_info.shape.back(), rows = shape_elements(b.out_info.shape) / c;
  const float* x = static_cast<const float*>(b.in[0]);
  float* y = static_cast<float*>(b.out);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * c;
    float* yr = y + r * c;
    const float top = *std::max_element(xr, xr + c);
    float sum = 0.0f;
    for (int64_t i = 0; i < c; ++i) sum += yr[i] = std::exp(xr[i] - top);
    for (int64_t i = 0; i < c; ++i) yr[i] /= sum;
  }
}

Status xnn_create(const BoundNode& b, XnnOps* ops) {
  const size_t c = static_cast<size_t>(b.out_info.shape.back());
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_softmax_nc_f32(c, c, c, 0, &op);
  ops->ops.push_back(op);
  return xnn_check(st, "create softmax");
}

Status xnn_setup(const BoundNode& b, XnnOps* ops, pthreadpool_t threadpool) {
  const size_t rows = shape_elements(b.out_info.shape) / b.out_info.shape.back();
  return xnn_check(xnn_setup_softmax_nc_f32(ops->ops[0], rows, static_cast<const float*>(b.in[0]),
                                            static_cast<float*>(b.out), threadpool),
                   "setup softmax");
}

}  // namespace

ADASCALE_OP_FACTORY(softmax) { return OpDef{"softmax", infer, reference, xnn_create, xnn_setup}; }

}  // namespace adascale
