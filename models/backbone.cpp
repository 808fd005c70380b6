#include "models/backbone.h"

#include <chrono>
#include <sstream>

#include "base/statistics.h"
#include "compress/conv_variants.h"
#include "compress/mac_counter.h"
#include "models/resnet.h"

namespace adascale::trainer {

namespace {

namespace nn = torch::nn;

using compress::ConvBn;

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
    return compress::linear_forward(*fc_, x);
  }
  std::vector<std::vector<BlockSlots>> stages() const override {
    std::vector<std::vector<BlockSlots>> out(stages_->size());
    for (size_t s = 0; s < stages_->size(); ++s) {
      const auto& stage = *(*stages_)[s]->as<nn::ModuleList>();
      for (size_t b = 0; b < stage.size(); ++b) {
        const std::string name = "stages." + std::to_string(s) + "." + std::to_string(b);
        BlockSlots block{name, {}};
        if (stage[b]->as<InvertedResidual>()->expand) block.conv_slots.push_back(name + ".expand");
        block.conv_slots.push_back(name + ".depthwise");
        block.conv_slots.push_back(name + ".project");
        out[s].push_back(block);
      }
    }
    return out;
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

std::shared_ptr<torch::nn::Module> Backbone::module_named(const std::string& name) const {
  for (const auto& item : named_modules("", /*include_self=*/false))
    if (item.key() == name) return item.value();
  throw ConfigError("no module '" + name + "' in " + describe());
}

std::shared_ptr<Backbone> make_backbone(const ModelConfig& config, int64_t in_channels,
                                        int64_t num_classes) {
  if (config.arch == "resnet")
    return std::make_shared<ResNet>(ResNetSpec::from_config(config, in_channels, num_classes));
  if (config.arch == "mobilenetv2")
    return std::make_shared<MobileNetV2>(config, in_channels, num_classes);
  throw ConfigError("model.arch: unknown architecture '" + config.arch + "'");
}

std::shared_ptr<Backbone> make_backbone(const ModelConfig& config, const std::string& spec_json,
                                        int64_t in_channels, int64_t num_classes) {
  if (spec_json.empty()) return make_backbone(config, in_channels, num_classes);
  auto spec = ResNetSpec::from_json(spec_json);
  if (spec.in_channels != in_channels || spec.classes != num_classes)
    throw ConfigError("resnet spec disagrees with the input channels or class count");
  return std::make_shared<ResNet>(spec);
}

double median_latency_ms(Backbone& model, const torch::Tensor& image, int64_t runs) {
  torch::NoGradGuard no_grad;
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  for (int i = 0; i < 10; ++i) model.forward(image);
  std::vector<double> ms;
  for (int64_t i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    model.forward(image);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  torch::set_num_threads(threads);
  return base::percentile(ms, 0.5);
}

ModelCost measure_cost(Backbone& model, int64_t channels, int64_t height, int64_t width) {
  ModelCost cost;
  for (const auto& p : model.parameters()) cost.params += p.numel();
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  {
    compress::MacCounter counter;
    const auto params = model.parameters();
    model.forward(torch::zeros({1, channels, height, width},
                               params.empty() ? torch::TensorOptions() : params[0].options()));
    cost.macs = counter.macs();
  }
  if (was_training) model.train();
  return cost;
}

}  // namespace adascale::trainer
