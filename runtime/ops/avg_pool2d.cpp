// avg_pool2d: attrs pool [h,w], stride [h,w], pad [top,left,bottom,right]. The divisor counts only
// pixels inside the input (padding excluded, as XNNPACK does; PyTorch's count_include_pad=False).
// Int8 requantizes to out_scale/out_zero_point; XNNPACK 2022 has no signed int8 average pooling,
// so int8 always runs the reference kernel.
#include <cmath>
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
  Window2d w;
  s = read_window(node, "pool", &w);
  if (!s.ok()) return s;
  if (w.pt >= w.kh || w.pb >= w.kh || w.pl >= w.kw || w.pr >= w.kw)
    return error_status(ErrorCode::kInvalidGraph, "padding must be smaller than the window");
  output->dtype = in.dtype;
  output->shape = {in.shape[0], window_output_size(in.shape[1], w.kh, w.sh, w.pt, w.pb),
                   window_output_size(in.shape[2], w.kw, w.sw, w.pl, w.pr), in.shape[3]};
  return in.dtype == DType::kI8 ? read_output_quant(node, output) : ok_status();
}

void reference(const BoundNode& b) {
  Window2d w;
  read_window(*b.node, "pool", &w);
  const TensorInfo &in = b.in_info[0], &out = b.out_info;
  const Shape &is = in.shape, &os = out.shape;
  const int64_t H = is[1], W = is[2], C = is[3];
  const bool int8 = in.dtype == DType::kI8;
  for (int64_t n = 0; n < os[0]; ++n)
    for (int64_t oy = 0; oy < os[1]; ++oy)
      for (int64_t ox = 0; ox < os[2]; ++ox)
        for (int64_t c = 0; c < C; ++c) {
          float sum = 0.0f;
          int32_t isum = 0, count = 0;
          for (int64_t ky = 0; ky < w.kh; ++ky) {
            const int64_t iy = oy * w.sh - w.pt + ky;
            if (iy < 0 || iy >= H) continue;
            for (int64_t kx = 0; kx < w.kw; ++kx) {
              const int64_t ix = ox * w.sw - w.pl + kx;
              if (ix < 0 || ix >= W) continue;
              const int64_t at = ((n * H + iy) * W + ix) * C + c;
              if (int8)
                isum += static_cast<const int8_t*>(b.in[0])[at] - in.zero_point;
              else
                sum += static_cast<const float*>(b.in[0])[at];
              ++count;
            }
          }
          const int64_t o = ((n * os[1] + oy) * os[2] + ox) * C + c;
          if (!int8) {
            static_cast<float*>(b.out)[o] = sum / static_cast<float>(count);
          } else {
            const float multiplier = in.scale / (out.scale * static_cast<float>(count));
            static_cast<int8_t*>(b.out)[o] =
                requantize(static_cast<float>(isum) * multiplier, out.zero_point, -128, 127);
          }
        }
}

Status xnn_create(const BoundNode& b, XnnOps* ops) {
  if (b.in_info[0].dtype != DType::kF32)
    return error_status(ErrorCode::kUnsupported, "no qs8 average pooling in this XNNPACK");
  Window2d w;
  read_window(*b.node, "pool", &w);
  if (w.kh * w.kw == 1) return error_status(ErrorCode::kUnsupported, "1x1 average pool");
  const size_t c = static_cast<size_t>(b.in_info[0].shape[3]);
  const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  xnn_operator_t op = nullptr;
  const xnn_status st = xnn_create_average_pooling2d_nhwc_f32(
      u32(w.pt), u32(w.pr), u32(w.pb), u32(w.pl), u32(w.kh), u32(w.kw), u32(w.sh), u32(w.sw), c, c,
      c, -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity(), 0, &op);
  ops->ops.push_back(op);
  return xnn_check(st, "create avg_pool2d");
}

Status xnn_setup(const BoundNode& b, XnnOps* ops, pthreadpool_t threadpool) {
  const Shape& s = b.in_info[0].shape;
  return xnn_check(xnn_setup_average_pooling2d_nhwc_f32(ops->ops[0], s[0], s[1], s[2],
                                                        static_cast<const float*>(b.in[0]),
                                                        static_cast<float*>(b.out), threadpool),
                   "setup avg_pool2d");
}

}  // namespace

ADASCALE_OP_FACTORY(avg_pool2d) {
  OpDef op{"avg_pool2d", infer, reference, xnn_create, xnn_setup};
  op.attrs = join_attrs({window_attrs("pool"), kOutputQuantAttrs});
  op.params = {};
  return op;
}

}  // namespace adascale
