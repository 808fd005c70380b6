#include "compress/conv_variants.h"

#include <algorithm>
#include <cmath>

#include "compress/batch_norm.h"
#include "compress/mac_counter.h"

namespace adascale::compress {
namespace {

namespace nn = torch::nn;

struct LowRankConv : ConvVariant {
  LowRankConv(int64_t in, int64_t out, int64_t rank, int64_t k, int64_t stride)
      : v(register_module("v", make_conv(in, rank, {k, 1}, {stride, 1}, {k / 2, 0}))),
        h(register_module("h", make_conv(rank, out, {1, k}, {1, stride}, {0, k / 2}))) {}
  torch::Tensor forward(const torch::Tensor& x) override {
    return conv_forward(*h, conv_forward(*v, x));
  }
  nn::Conv2d v, h;
};

struct DpConv : ConvVariant {
  DpConv(int64_t in, int64_t out, int64_t k, int64_t stride)
      : dw(register_module("dw", make_conv(in, in, {k, k}, {stride, stride}, {k / 2, k / 2}, in))),
        dw_bn(register_module("dw_bn", nn::BatchNorm2d(in))),
        pw(register_module("pw", make_conv(in, out, {1, 1}, {1, 1}, {0, 0}))) {}
  torch::Tensor forward(const torch::Tensor& x) override {
    return conv_forward(*pw, torch::relu(batch_norm(*dw_bn, conv_forward(*dw, x))));
  }
  nn::Conv2d dw;
  nn::BatchNorm2d dw_bn;
  nn::Conv2d pw;
};

struct FireConv : ConvVariant {
  FireConv(int64_t in, int64_t out, int64_t squeeze_channels, int64_t k, int64_t stride)
      : squeeze(register_module("squeeze",
                                make_conv(in, squeeze_channels, {1, 1}, {stride, stride}, {0, 0}))),
        squeeze_bn(register_module("squeeze_bn", nn::BatchNorm2d(squeeze_channels))),
        expand1(register_module("expand1",
                                make_conv(squeeze_channels, out / 2, {1, 1}, {1, 1}, {0, 0}))),
        expand3(register_module("expand3", make_conv(squeeze_channels, out - out / 2, {k, k},
                                                     {1, 1}, {k / 2, k / 2}))) {}
  torch::Tensor forward(const torch::Tensor& x) override {
    auto s = torch::relu(batch_norm(*squeeze_bn, conv_forward(*squeeze, x)));
    return torch::cat({conv_forward(*expand1, s), conv_forward(*expand3, s)}, 1);
  }
  nn::Conv2d squeeze;
  nn::BatchNorm2d squeeze_bn;
  nn::Conv2d expand1, expand3;
};

}  // namespace

nn::Conv2d make_conv(int64_t in, int64_t out, std::vector<int64_t> kernel,
                     std::vector<int64_t> stride, std::vector<int64_t> padding, int64_t groups) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel)
                        .stride(stride)
                        .padding(padding)
                        .groups(groups)
                        .bias(false));
}

ConvBn::ConvBn(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t groups)
    : conv(register_module("conv",
                           make_conv(in, out, {k, k}, {stride, stride}, {k / 2, k / 2}, groups))),
      bn(register_module("bn", nn::BatchNorm2d(out))) {}

torch::Tensor ConvBn::forward(const torch::Tensor& x) {
  return batch_norm(*bn, conv_forward(*conv, x));
}

bool check_conv_variant(const ConvVariantSpec& spec, int64_t in, int64_t out, std::string* why) {
  if (spec.kind == "conv" || spec.kind == "dpconv") return true;
  if (spec.kind == "lowrank") {
    if (spec.rank >= 1) return true;
    *why = "lowrank needs rank >= 1";
    return false;
  }
  if (spec.kind == "fire") {
    if (spec.squeeze >= 1 && out >= 2) return true;
    *why = "fire needs squeeze >= 1 and at least 2 output channels";
    return false;
  }
  *why = "unknown convolution kind '" + spec.kind + "' (conv, lowrank, dpconv, fire)";
  return false;
}

int64_t fire_squeeze_channels(int64_t outputs, double ratio) {
  return std::max<int64_t>(1, std::lround(ratio * static_cast<double>(outputs)));
}

torch::Tensor fire_channel_index(int64_t n, int64_t n_full) {
  const int64_t half = n_full / 2;
  return torch::cat(
      {torch::arange(n / 2, torch::kLong), torch::arange(half, half + n - n / 2, torch::kLong)});
}

std::shared_ptr<nn::Module> make_conv_slot(const ConvVariantSpec& spec, int64_t in, int64_t out,
                                           int64_t kernel, int64_t stride) {
  std::string why;
  if (!check_conv_variant(spec, in, out, &why)) throw std::invalid_argument(why);
  if (spec.kind == "conv")
    return make_conv(in, out, {kernel, kernel}, {stride, stride}, {kernel / 2, kernel / 2}).ptr();
  if (spec.kind == "lowrank")
    return std::make_shared<LowRankConv>(in, out, spec.rank, kernel, stride);
  if (spec.kind == "dpconv") return std::make_shared<DpConv>(in, out, kernel, stride);
  return std::make_shared<FireConv>(in, out, spec.squeeze, kernel, stride);
}

torch::Tensor forward_conv_slot(nn::Module& slot, const torch::Tensor& x) {
  if (auto* conv = slot.as<nn::Conv2d>()) return conv_forward(*conv, x);
  return dynamic_cast<ConvVariant&>(slot).forward(x);
}

}  // namespace adascale::compress
