// conv2d: grouped 2-D convolution (depthwise when groups == channels), NHWC, OHWI weights per group
// ([groups][group_out][kh][kw][group_in]), asymmetric kernels and padding, dilation 1, optional
// bias, fused none/relu/relu6. Int8: per-output-channel symmetric weights (XNNPACK "qc8").
#include <algorithm>
#include <cmath>
#include <vector>

#if ADASCALE_X86_KERNELS
#include "runtime/arch/conv2d_int8_vnni.h"
#endif
#include "runtime/op_registry.h"
#include "runtime/quant.h"

namespace adascale {
namespace {

struct ConvParams {
  Window2d w;
  int64_t groups = 1, in_c = 0, out_c = 0, gi = 0, go = 0;
  Activation act = Activation::kNone;
};

Status read_conv(const Node& node, const TensorInfo& input, const ConstantMap& constants,
                 ConvParams* p) {
  Status s = read_window(node, "kernel", &p->w);
  if (!s.ok()) return s;
  const auto dilation = node.attrs.get_ints("dilation", {1, 1});
  if (dilation != std::vector<int64_t>{1, 1})
    return error_status(ErrorCode::kUnsupported, "only dilation [1,1] is supported");
  s = parse_activation(node.attrs, &p->act);
  if (!s.ok()) return s;
  if (input.shape.size() != 4)
    return error_status(ErrorCode::kInvalidGraph,
                        "input must be NHWC, got " + shape_string(input.shape));
  p->groups = node.attrs.get_int("groups", 1);
  p->in_c = input.shape[3];
  if (p->groups < 1 || p->in_c % p->groups != 0)
    return error_status(ErrorCode::kInvalidGraph, "input channels " + std::to_string(p->in_c) +
                                                      " not divisible by groups " +
                                                      std::to_string(p->groups));
  p->gi = p->in_c / p->groups;
  const ConstTensor* weight = nullptr;
  s = require_param(node, constants, "weight", input.dtype, {}, &weight);
  if (!s.ok()) return s;
  if (weight->shape.size() != 4 || weight->shape[1] != p->w.kh || weight->shape[2] != p->w.kw ||
      weight->shape[3] != p->gi || weight->shape[0] < 1 || weight->shape[0] % p->groups != 0)
    return error_status(ErrorCode::kInvalidGraph,
                        "weight shape " + shape_string(weight->shape) + " does not match [O," +
                            std::to_string(p->w.kh) + "," + std::to_string(p->w.kw) + "," +
                            std::to_string(p->gi) + "] with O divisible by groups");
  p->out_c = weight->shape[0];
  p->go = p->out_c / p->groups;
  const bool int8 = input.dtype == DType::kI8;
  if (node.params.count("bias")) {
    s = require_param(node, constants, "bias", int8 ? DType::kI32 : DType::kF32, {p->out_c},
                      nullptr);
    if (!s.ok()) return s;
  }
  if (int8) return require_param(node, constants, "weight_scale", DType::kF32, {p->out_c}, nullptr);
  return ok_status();
}

Status infer(const Node& node, const std::vector<TensorInfo>& inputs, const ConstantMap& constants,
             TensorInfo* output) {
  Status s = check_input_count(node, inputs, 1);
  if (!s.ok()) return s;
  const TensorInfo& in = inputs[0];
  if (in.dtype == DType::kI32)
    return error_status(ErrorCode::kInvalidGraph, "input must be f32/i8");
  ConvParams p;
  s = read_conv(node, in, constants, &p);
  if (!s.ok()) return s;
  output->dtype = in.dtype;
  output->shape = {in.shape[0], window_output_size(in.shape[1], p.w.kh, p.w.sh, p.w.pt, p.w.pb),
                   window_output_size(in.shape[2], p.w.kw, p.w.sw, p.w.pl, p.w.pr), p.out_c};
  return in.dtype == DType::kI8 ? read_output_quant(node, output) : ok_status();
}

template <typename Acc, typename In, typename Store>
void conv_loop(const BoundNode& b, const ConvParams& p, const In* x, const In* weight, Acc x_zero,
               Store store) {
  const Shape& is = b.in_info[0].shape;
  const Shape& os = b.out_info.shape;
  const int64_t H = is[1], W = is[2];
  for (int64_t n = 0; n < os[0]; ++n)
    for (int64_t oy = 0; oy < os[1]; ++oy)
      for (int64_t ox = 0; ox < os[2]; ++ox)
        for (int64_t oc = 0; oc < p.out_c; ++oc) {
          const int64_t g = oc / p.go;
          Acc acc = 0;
          for (int64_t ky = 0; ky < p.w.kh; ++ky) {
            const int64_t iy = oy * p.w.sh - p.w.pt + ky;
            if (iy < 0 || iy >= H) continue;
            for (int64_t kx = 0; kx < p.w.kw; ++kx) {
              const int64_t ix = ox * p.w.sw - p.w.pl + kx;
              if (ix < 0 || ix >= W) continue;
              const In* xp = x + ((n * H + iy) * W + ix) * p.in_c + g * p.gi;
              const In* wp = weight + ((oc * p.w.kh + ky) * p.w.kw + kx) * p.gi;
              for (int64_t ic = 0; ic < p.gi; ++ic)
                acc += (static_cast<Acc>(xp[ic]) - x_zero) * static_cast<Acc>(wp[ic]);
            }
          }
          store(((n * os[1] + oy) * os[2] + ox) * p.out_c + oc, oc, acc);
        }
}

void reference(const BoundNode& b) {
  ConvParams p;
  read_conv(*b.node, b.in_info[0], *b.constants, &p);
  if (b.in_info[0].dtype == DType::kF32) {
    const float* bias = b.param_data<float>("bias");
    float lo, hi;
    activation_range_f32(p.act, &lo, &hi);
    float* y = static_cast<float*>(b.out);
    conv_loop<float>(b, p, static_cast<const float*>(b.in[0]), b.param_data<float>("weight"), 0.0f,
                     [&](int64_t i, int64_t oc, float acc) {
                       y[i] = std::min(std::max(acc + (bias ? bias[oc] : 0.0f), lo), hi);
                     });
    return;
  }
  const TensorInfo& in = b.in_info[0];
  const TensorInfo& out = b.out_info;
  const int32_t* bias = b.param_data<int32_t>("bias");
  const float* wscale = b.param_data<float>("weight_scale");
  int32_t lo, hi;
  activation_range_i8(p.act, out.scale, out.zero_point, &lo, &hi);
  int8_t* y = static_cast<int8_t*>(b.out);
  conv_loop<int32_t>(b, p, static_cast<const int8_t*>(b.in[0]), b.param_data<int8_t>("weight"),
                     in.zero_point, [&](int64_t i, int64_t oc, int32_t acc) {
                       const float multiplier = in.scale * wscale[oc] / out.scale;
                       acc += bias ? bias[oc] : 0;
                       y[i] =
                           requantize(static_cast<float>(acc) * multiplier, out.zero_point, lo, hi);
                     });
}

#if ADASCALE_X86_KERNELS
// Int8 convolution on AVX512-VNNI (runtime/arch/), bit-exact with the reference kernel.
class VnniConv : public ArchKernel {
 public:
  explicit VnniConv(std::unique_ptr<Conv2dInt8Vnni> conv) : conv_(std::move(conv)) {}
  const char* name() const override { return "avx512vnni"; }
  void setup(const BoundNode& b) override {
    conv_->setup(b.in_info[0].shape[1], b.in_info[0].shape[2]);
  }
  void run(const BoundNode& b, pthreadpool_t threadpool) override {
    conv_->run(static_cast<const int8_t*>(b.in[0]), b.in_info[0].shape[0],
               static_cast<int8_t*>(b.out), threadpool);
  }

 private:
  std::unique_ptr<Conv2dInt8Vnni> conv_;
};

// XNNPACK's qc8 convolution refuses scales that are not positive normal floats and
// requantization multipliers of 256 or more; the arch kernel declines the same cases, so that
// XNNPACK reports them and a bundle prepares (or fails) the same on every host.
bool xnnpack_accepts_scales(const ConvParams& p, const float* weight_scale, float in_scale,
                            float out_scale) {
  const auto positive_normal = [](float v) { return std::isnormal(v) && v > 0; };
  if (!positive_normal(in_scale) || !positive_normal(out_scale)) return false;
  for (int64_t o = 0; o < p.out_c; ++o) {
    const float multiplier = in_scale * weight_scale[o] / out_scale;
    if (!positive_normal(weight_scale[o]) || !positive_normal(multiplier) || multiplier >= 256.0f)
      return false;
  }
  return true;
}

std::unique_ptr<ArchKernel> make_arch_kernel(const BoundNode& b, const ConvParams& p) {
  if (b.in_info[0].dtype != DType::kI8 || p.groups != 1) return nullptr;
  const TensorInfo& in = b.in_info[0];
  const TensorInfo& out = b.out_info;
  const float* weight_scale = b.param_data<float>("weight_scale");
  if (!xnnpack_accepts_scales(p, weight_scale, in.scale, out.scale)) return nullptr;
  Conv2dInt8Quant q;
  q.in_zero_point = in.zero_point;
  q.in_scale = in.scale;
  q.out_zero_point = out.zero_point;
  q.out_scale = out.scale;
  activation_range_i8(p.act, out.scale, out.zero_point, &q.out_min, &q.out_max);
  const Conv2dInt8Geometry g{p.in_c, p.out_c, p.w.kh, p.w.kw, p.w.sh,
                             p.w.sw, p.w.pt,  p.w.pl, p.w.pb, p.w.pr};
  auto conv = Conv2dInt8Vnni::create(g, q, b.param_data<int8_t>("weight"),
                                     b.param_data<int32_t>("bias"), weight_scale);
  if (!conv) return nullptr;
  return std::make_unique<VnniConv>(std::move(conv));
}
#else
// no per-architecture int8 convolution for this CPU family: XNNPACK's kernels run
std::unique_ptr<ArchKernel> make_arch_kernel(const BoundNode&, const ConvParams&) {
  return nullptr;
}
#endif

Status xnn_create(const BoundNode& b, XnnOps* ops) {
  ConvParams p;
  Status s = read_conv(*b.node, b.in_info[0], *b.constants, &p);
  if (!s.ok()) return s;
  if (ops->allow_arch) {
    ops->arch = make_arch_kernel(b, p);
    if (ops->arch) return ok_status();
  }
  xnn_operator_t op = nullptr;
  xnn_status st;
  const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  if (b.in_info[0].dtype == DType::kF32) {
    float lo, hi;
    activation_range_f32(p.act, &lo, &hi);
    st = xnn_create_convolution2d_nhwc_f32(
        u32(p.w.pt), u32(p.w.pr), u32(p.w.pb), u32(p.w.pl), u32(p.w.kh), u32(p.w.kw), u32(p.w.sh),
        u32(p.w.sw), 1, 1, u32(p.groups), p.gi, p.go, p.in_c, p.out_c,
        b.param_data<float>("weight"), b.param_data<float>("bias"), lo, hi, 0, &op);
  } else {
    const TensorInfo& in = b.in_info[0];
    const TensorInfo& out = b.out_info;
    int32_t lo, hi;
    activation_range_i8(p.act, out.scale, out.zero_point, &lo, &hi);
    st = xnn_create_convolution2d_nhwc_qc8(
        u32(p.w.pt), u32(p.w.pr), u32(p.w.pb), u32(p.w.pl), u32(p.w.kh), u32(p.w.kw), u32(p.w.sh),
        u32(p.w.sw), 1, 1, u32(p.groups), p.gi, p.go, p.in_c, p.out_c,
        static_cast<int8_t>(in.zero_point), in.scale, b.param_data<float>("weight_scale"),
        b.param_data<int8_t>("weight"), b.param_data<int32_t>("bias"),
        static_cast<int8_t>(out.zero_point), out.scale, static_cast<int8_t>(lo),
        static_cast<int8_t>(hi), 0, &op);
  }
  ops->ops.push_back(op);
  return xnn_check(st, "create conv2d");
}

Status xnn_setup(const BoundNode& b, XnnOps* ops, pthreadpool_t threadpool) {
  if (ops->arch) {
    ops->arch->setup(b);
    return ok_status();
  }
  const Shape& is = b.in_info[0].shape;
  if (b.in_info[0].dtype == DType::kF32)
    return xnn_check(xnn_setup_convolution2d_nhwc_f32(ops->ops[0], is[0], is[1], is[2],
                                                      static_cast<const float*>(b.in[0]),
                                                      static_cast<float*>(b.out), threadpool),
                     "setup conv2d");
  return xnn_check(xnn_setup_convolution2d_nhwc_qc8(ops->ops[0], is[0], is[1], is[2],
                                                    static_cast<const int8_t*>(b.in[0]),
                                                    static_cast<int8_t*>(b.out), threadpool),
                   "setup conv2d");
}

}  // namespace

ADASCALE_OP_FACTORY(conv2d) {
  OpDef op{"conv2d", infer, reference, xnn_create, xnn_setup};
  op.attrs = join_attrs({window_attrs("kernel"),
                         {{"dilation", AttrKind::kInts}, {"groups", AttrKind::kInt}},
                         kActivationAttrs,
                         kOutputQuantAttrs,
                         kDerivedWeightAttrs});
  op.params = {"weight", "bias", "weight_scale", "weight_mul"};
  return op;
}

}  // namespace adascale
