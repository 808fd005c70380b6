#include "trainer/models.h"

#include <sstream>

namespace adascale::trainer {
namespace {

namespace nn = torch::nn;

// set while measure_cost runs a forward pass: every conv and linear adds its MACs here
thread_local int64_t* g_macs = nullptr;

torch::Tensor run(nn::Conv2d& c, const torch::Tensor& x) {
  auto y = c->forward(x);
  if (g_macs) {
    const auto& w = c->weight;  // [out, in/groups, kh, kw]
    *g_macs += y.numel() / y.size(0) * w.size(1) * w.size(2) * w.size(3);
  }
  return y;
}

torch::Tensor run(nn::Linear& l, const torch::Tensor& x) {
  auto y = l->forward(x);
  if (g_macs) *g_macs += l->weight.numel();
  return y;
}

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t groups = 1) {
  return nn::Conv2d(
      nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).groups(groups).bias(false));
}

struct ConvBn : nn::Module {
  ConvBn(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t groups = 1)
      : conv(register_module("conv", trainer::conv(in, out, k, stride, groups))),
        bn(register_module("bn", nn::BatchNorm2d(out))) {}
  torch::Tensor forward(const torch::Tensor& x) { return bn->forward(run(conv, x)); }
  nn::Conv2d conv;
  nn::BatchNorm2d bn;
};

struct BasicBlock : nn::Module {
  BasicBlock(int64_t in, int64_t out, int64_t stride)
      : conv1(register_module("conv1", conv(in, out, 3, stride))),
        bn1(register_module("bn1", nn::BatchNorm2d(out))),
        conv2(register_module("conv2", conv(out, out, 3))),
        bn2(register_module("bn2", nn::BatchNorm2d(out))) {
    if (stride != 1 || in != out)
      shortcut = register_module("shortcut", std::make_shared<ConvBn>(in, out, 1, stride));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = torch::relu(bn1->forward(run(conv1, x)));
    y = bn2->forward(run(conv2, y));
    return torch::relu(y + (shortcut ? shortcut->forward(x) : x));
  }
  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  nn::Conv2d conv2;
  nn::BatchNorm2d bn2;
  std::shared_ptr<ConvBn> shortcut;
};

struct InvertedResidual : nn::Module {
  InvertedResidual(int64_t in, int64_t out, int64_t stride, int64_t expansion)
      : residual(stride == 1 && in == out) {
    const int64_t hidden = in * expansion;
    if (expansion != 1) expand = register_module("expand", std::make_shared<ConvBn>(in, hidden, 1));
    depthwise =
        register_module("depthwise", std::make_shared<ConvBn>(hidden, hidden, 3, stride, hidden));
    project = register_module("project", std::make_shared<ConvBn>(hidden, out, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = expand ? torch::hardtanh(expand->forward(x), 0.0, 6.0) : x;
    y = torch::hardtanh(depthwise->forward(y), 0.0, 6.0);
    y = project->forward(y);
    return residual ? y + x : y;
  }
  bool residual;
  std::shared_ptr<ConvBn> expand, depthwise, project;
};

class ResNet : public Backbone {
 public:
  ResNet(const ModelConfig& c, int64_t in_channels, int64_t classes) : config_(c) {
    stem_ = register_module("stem", std::make_shared<ConvBn>(in_channels, c.stem_width, 3));
    stages_ = register_module("stages", nn::ModuleList());
    int64_t in = c.stem_width;
    for (size_t s = 0; s < c.widths.size(); ++s) {
      auto stage = nn::ModuleList();
      for (int64_t b = 0; b < c.depths[s]; ++b) {
        stage->push_back(
            std::make_shared<BasicBlock>(in, c.widths[s], (b == 0 && s > 0) ? 2 : 1));
        in = c.widths[s];
      }
      stages_->push_back(stage);
    }
    fc_ = register_module("fc", nn::Linear(in, classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::relu(stem_->forward(x));
    for (auto& stage : *stages_)
      for (auto& block : *stage->as<nn::ModuleList>()) x = block->as<BasicBlock>()->forward(x);
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return run(fc_, x);
  }
  std::string describe() const override {
    return "resnet stem" + std::to_string(config_.stem_width) + " widths " +
           join_int_list(config_.widths) + " depths " + join_int_list(config_.depths);
  }

 private:
  ModelConfig config_;
  std::shared_ptr<ConvBn> stem_;
  nn::ModuleList stages_{nullptr};
  nn::Linear fc_{nullptr};
};

class MobileNetV2 : public Backbone {
 public:
  MobileNetV2(const ModelConfig& c, int64_t in_channels, int64_t classes) : config_(c) {
    stem_ = register_module("stem", std::make_shared<ConvBn>(in_channels, c.stem_width, 3));
    stages_ = register_module("stages", nn::ModuleList());
    int64_t in = c.stem_width;
    for (size_t s = 0; s < c.widths.size(); ++s) {
      auto stage = nn::ModuleList();
      for (int64_t b = 0; b < c.depths[s]; ++b) {
        // the first stage keeps expansion 1, as in MobileNetV2
        stage->push_back(std::make_shared<InvertedResidual>(
            in, c.widths[s], (b == 0 && s > 0) ? 2 : 1, s == 0 ? 1 : c.expansion));
        in = c.widths[s];
      }
      stages_->push_back(stage);
    }
    fc_ = register_module("fc", nn::Linear(in, classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::hardtanh(stem_->forward(x), 0.0, 6.0);
    for (auto& stage : *stages_)
      for (auto& block : *stage->as<nn::ModuleList>())
        x = block->as<InvertedResidual>()->forward(x);
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return run(fc_, x);
  }
  std::string describe() const override {
    return "mobilenetv2 stem" + std::to_string(config_.stem_width) + " widths " +
           join_int_list(config_.widths) + " depths " + join_int_list(config_.depths) +
           " expansion " + std::to_string(config_.expansion);
  }

 private:
  ModelConfig config_;
  std::shared_ptr<ConvBn> stem_;
  nn::ModuleList stages_{nullptr};
  nn::Linear fc_{nullptr};
};

}  // namespace

std::shared_ptr<Backbone> make_backbone(const ModelConfig& config, int64_t in_channels,
                                        int64_t num_classes) {
  if (config.arch == "resnet") return std::make_shared<ResNet>(config, in_channels, num_classes);
  if (config.arch == "mobilenetv2")
    return std::make_shared<MobileNetV2>(config, in_channels, num_classes);
  throw ConfigError("model.arch: unknown architecture '" + config.arch + "'");
}

ModelCost measure_cost(Backbone& model, int64_t channels, int64_t height, int64_t width) {
  ModelCost cost;
  for (const auto& p : model.parameters()) cost.params += p.numel();
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  int64_t macs = 0;
  g_macs = &macs;
  model.forward(torch::zeros({1, channels, height, width}));
  g_macs = nullptr;
  if (was_training) model.train();
  cost.macs = macs;
  return cost;
}

}  // namespace adascale::trainer
