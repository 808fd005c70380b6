// Replacements for a kxk convolution (in -> out channels, stride s), the operator set of the
// multi-branch network. Each keeps the convolution's input/output contract, so it drops into the
// same place in a network:
//   LowRankConv  kx1 conv to `rank` channels, then 1xk conv to out (spatial low rank; factors
//                from decompose_spatial, exact at full rank)
//   DpConv       depthwise kxk (stride s), BN, ReLU, pointwise 1x1 (MobileNet decomposition)
//   FireConv     1x1 squeeze to `squeeze` channels (stride s), BN, ReLU, then a 1x1 expand to
//                out/2 and a kxk expand to out - out/2, concatenated (SqueezeNet)
// Parameter names (relative to the slot): lowrank "v", "h"; dpconv "dw", "dw_bn", "pw";
// fire "squeeze", "squeeze_bn", "expand1", "expand3".
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace adascale::compress {

// bias-free convolution (a BatchNorm always follows in our networks)
torch::nn::Conv2d make_conv(int64_t in, int64_t out, std::vector<int64_t> kernel,
                            std::vector<int64_t> stride, std::vector<int64_t> padding,
                            int64_t groups = 1);

// kxk convolution ("same" padding) followed by BatchNorm: parameters "conv.weight", "bn.*"
struct ConvBn : torch::nn::Module {
  ConvBn(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t groups = 1);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv;
  torch::nn::BatchNorm2d bn;
};

class ConvVariant : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};

struct ConvVariantSpec {
  std::string kind = "conv";  // conv | lowrank | dpconv | fire
  int64_t rank = 0;           // lowrank
  int64_t squeeze = 0;        // fire
  bool operator==(const ConvVariantSpec& o) const {
    return kind == o.kind && rank == o.rank && squeeze == o.squeeze;
  }
};

// the channels a fire's output keeps when it is cut from n_full to n: the fire concatenates its
// 1x1 expand's channels and its 3x3 expand's, and a narrower fire keeps the leading ones of each,
// so these are the leading n/2 of the first half and the leading n - n/2 of the second
torch::Tensor fire_channel_index(int64_t n, int64_t n_full);

// a fire's squeeze width for `outputs` output channels at squeeze ratio `ratio`: at least one
int64_t fire_squeeze_channels(int64_t outputs, double ratio);

// a plain conv is returned as an nn::Conv2dImpl (parameter "weight"), the others as ConvVariant
std::shared_ptr<torch::nn::Module> make_conv_slot(const ConvVariantSpec& spec, int64_t in,
                                                  int64_t out, int64_t kernel, int64_t stride);
torch::Tensor forward_conv_slot(torch::nn::Module& slot, const torch::Tensor& x);
// false (with the reason) when the kind is unknown or its parameter is out of range
bool check_conv_variant(const ConvVariantSpec& spec, int64_t in, int64_t out, std::string* why);

}  // namespace adascale::compress
