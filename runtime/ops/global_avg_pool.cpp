// global_avg_pool: [N,H,W,C] -> [N,1,1,C] mean over all pixels; int8 requantizes once.
#include <limits>

#include "runtime/op_registry.h"
#include "runtime/quant.h"

namespace adascale {
namespace {

Status infer(const Node& node, const std::vector<TensorInfo>& inputs, const ConstantMap&,
             TensorInfo* output) {
  Status s = check_input_count(node, inputs, 1);
  if (!s.ok()) return s;
  const TensorInfo& in = inputs[0];
  if (in.dtype == DType::kI32 || in.shape.size() != 4)
    return error_status(ErrorCode::kInvalidGraph, "input must be f32/i8 NHWC");
  output->dtype = in.dtype;
  output->shape = {in.shape[0], 1, 1, in.shape[3]};
  return in.dtype == DType::kI8 ? read_output_quant(node, output) : ok_status();
}

void reference(const BoundNode& b) {
  const TensorInfo &in = b.in_info[0], &out = b.out_info;
  const int64_t N = in.shape[0], pixels = in.shape[1] * in.shape[2], C = in.shape[3];
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      if (in.dtype == DType::kF32) {
        const float* x = static_cast<const float*>(b.in[0]) + n * pixels * C + c;
        float sum = 0.0f;
        for (int64_t p = 0; p < pixels; ++p) sum += x[p * C];
        static_cast<float*>(b.out)[n * C + c] = sum / static_cast<float>(pixels);
      } else {
        const int8_t* x = static_cast<const int8_t*>(b.in[0]) + n * pixels * C + c;
        int32_t sum = 0;
        for (int64_t p = 0; p < pixels; ++p) sum += x[p * C] - in.zero_point;
        const float multiplier = in.scale / (out.scale * static_cast<float>(pixels));
        static_cast<int8_t*>(b.out)[n * C + c] =
            requantize(static_cast<float>(sum) * multiplier, out.zero_point, -128, 127);
      }
    }
}

Status xnn_create(const BoundNode& b, XnnOps* ops) {
  const TensorInfo &in = b.in_info[0], &out = b.out_info;
  const size_t c = static_cast<size_t>(in.shape[3]);
  xnn_operator_t op = nullptr;
  xnn_status st;
  if (in.dtype == DType::kF32)
    st = xnn_create_global_average_pooling_nwc_f32(c, c, c, -std::numeric_limits<float>::infinity(),
                                                   std::numeric_limits<float>::infinity(), 0, &op);
  else
    st = xnn_create_global_average_pooling_nwc_qs8(c, c, c, static_cast<int8_t>(in.zero_point),
                                                   in.scale, static_cast<int8_t>(out.zero_point),
                                                   out.scale, -128, 127, 0, &op);
  ops->ops.push_back(op);
  return xnn_check(st, "create global_avg_pool");
}

Status xnn_setup(const BoundNode& b, XnnOps* ops, pthreadpool_t threadpool) {
  const Shape& s = b.in_info[0].shape;
  const size_t batch = static_cast<size_t>(s[0]), width = static_cast<size_t>(s[1] * s[2]);
  if (b.in_info[0].dtype == DType::kF32)
    return xnn_check(xnn_setup_global_average_pooling_nwc_f32(
                         ops->ops[0], batch, width, static_cast<const float*>(b.in[0]),
                         static_cast<float*>(b.out), threadpool),
                     "setup global_avg_pool");
  return xnn_check(xnn_setup_global_average_pooling_nwc_qs8(
                       ops->ops[0], batch, width, static_cast<const int8_t*>(b.in[0]),
                       static_cast<int8_t*>(b.out), threadpool),
                   "setup global_avg_pool");
}

}  // namespace

ADASCALE_OP_FACTORY(global_avg_pool) {
  OpDef op{"global_avg_pool", infer, reference, xnn_create, xnn_setup};
  op.attrs = kOutputQuantAttrs;
  op.params = {};
  return op;
}

}  // namespace adascale
