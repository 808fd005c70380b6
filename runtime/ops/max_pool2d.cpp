// max_pool2d: attrs pool [h,w], stride [h,w], pad [top,left,bottom,right]; padding never wins.
// Int8 keeps the input quantization (max commutes with the affine map).
#include <algorithm>
#include <limits>

#include "runtime/op_registry.h"

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
  *output = in;
  output->shape = {in.shape[0], window_output_size(in.shape[1], w.kh, w.sh, w.pt, w.pb),
                   window_output_size(in.shape[2], w.kw, w.sw, w.pl, w.pr), in.shape[3]};
  return ok_status();
}

template <typename T>
void pool(const BoundNode& b, const Window2d& w) {
  const Shape &is = b.in_info[0].shape, &os = b.out_info.shape;
  const int64_t H = is[1], W = is[2], C = is[3];
  const T* x = static_cast<const T*>(b.in[0]);
  T* y = static_cast<T*>(b.out);
  for (int64_t n = 0; n < os[0]; ++n)
    for (int64_t oy = 0; oy < os[1]; ++oy)
      for (int64_t ox = 0; ox < os[2]; ++ox)
        for (int64_t c = 0; c < C; ++c) {
          T best = std::numeric_limits<T>::lowest();
          for (int64_t ky = 0; ky < w.kh; ++ky) {
            const int64_t iy = oy * w.sh - w.pt + ky;
            if (iy < 0 || iy >= H) continue;
            for (int64_t kx = 0; kx < w.kw; ++kx) {
              const int64_t ix = ox * w.sw - w.pl + kx;
              if (ix >= 0 && ix < W) best = std::max(best, x[((n * H + iy) * W + ix) * C + c]);
            }
          }
          y[((n * os[1] + oy) * os[2] + ox) * C + c] = best;
        }
}

void reference(const BoundNode& b) {
  Window2d w;
  read_window(*b.node, "pool", &w);
  if (b.in_info[0].dtype == DType::kF32)
    pool<float>(b, w);
  else
    pool<int8_t>(b, w);
}

Status xnn_create(const BoundNode& b, XnnOps* ops) {
  Window2d w;
  read_window(*b.node, "pool", &w);
  // XNNPACK rejects 1x1 windows; the reference kernel handles that degenerate case.
  if (w.kh * w.kw == 1) return error_status(ErrorCode::kUnsupported, "1x1 max pool");
  const size_t c = static_cast<size_t>(b.in_info[0].shape[3]);
  const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  xnn_operator_t op = nullptr;
  xnn_status st;
  if (b.in_info[0].dtype == DType::kF32)
    st = xnn_create_max_pooling2d_nhwc_f32(u32(w.pt), u32(w.pr), u32(w.pb), u32(w.pl), u32(w.kh),
                                           u32(w.kw), u32(w.sh), u32(w.sw), 1, 1, c, c, c,
                                           -std::numeric_limits<float>::infinity(),
                                           std::numeric_limits<float>::infinity(), 0, &op);
  else
    st = xnn_create_max_pooling2d_nhwc_s8(u32(w.pt), u32(w.pr), u32(w.pb), u32(w.pl), u32(w.kh),
                                          u32(w.kw), u32(w.sh), u32(w.sw), 1, 1, c, c, c, -128, 127,
                                          0, &op);
  ops->ops.push_back(op);
  return xnn_check(st, "create max_pool2d");
}

Status xnn_setup(const BoundNode& b, XnnOps* ops, pthreadpool_t threadpool) {
  const Shape& s = b.in_info[0].shape;
  if (b.in_info[0].dtype == DType::kF32)
    return xnn_check(xnn_setup_max_pooling2d_nhwc_f32(ops->ops[0], s[0], s[1], s[2],
                                                      static_cast<const float*>(b.in[0]),
                                                      static_cast<float*>(b.out), threadpool),
                     "setup max_pool2d");
  return xnn_check(xnn_setup_max_pooling2d_nhwc_s8(ops->ops[0], s[0], s[1], s[2],
                                                   static_cast<const int8_t*>(b.in[0]),
                                                   static_cast<int8_t*>(b.out), threadpool),
                   "setup max_pool2d");
}

}  // namespace

ADASCALE_OP_FACTORY(max_pool2d) {
  OpDef op{"max_pool2d", infer, reference, xnn_create, xnn_setup};
  op.attrs = window_attrs("pool");
  op.params = {};
  return op;
}

}  // namespace adascale
