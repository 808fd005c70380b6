#include "models/backbone.h"

#include <chrono>
#include <sstream>

#include "base/statistics.h"
#include "compress/conv_variants.h"
#include "compress/mac_counter.h"
#include "models/mobilenetv2.h"
#include "models/resnet.h"

namespace adascale::trainer {

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
    return std::make_shared<MobileNetV2>(
        MobileNetV2Spec::from_config(config, in_channels, num_classes));
  throw ConfigError("model.arch: unknown architecture '" + config.arch + "'");
}

std::shared_ptr<Backbone> make_backbone(const ModelConfig& config, const std::string& spec_json,
                                        int64_t in_channels, int64_t num_classes) {
  if (spec_json.empty()) return make_backbone(config, in_channels, num_classes);
  // the spec names the family; a config of the other family is a checkpoint mix-up
  const std::string arch = spec_architecture(spec_json);
  if (arch != config.arch)
    throw ConfigError("the checkpoint's spec is a " + (arch.empty() ? "malformed one" : arch) +
                      ", its config says model.arch = " + config.arch);
  auto check = [&](int64_t channels, int64_t classes) {
    if (channels != in_channels || classes != num_classes)
      throw ConfigError(arch + " spec disagrees with the input channels or class count");
  };
  if (arch == "mobilenetv2") {
    auto spec = MobileNetV2Spec::from_json(spec_json);
    check(spec.in_channels, spec.classes);
    return std::make_shared<MobileNetV2>(spec);
  }
  auto spec = ResNetSpec::from_json(spec_json);
  check(spec.in_channels, spec.classes);
  return std::make_shared<ResNet>(spec);
}

std::shared_ptr<Backbone> backbone_from_spec(const std::string& spec_json) {
  const std::string arch = spec_architecture(spec_json);
  if (arch == "mobilenetv2")
    return std::make_shared<MobileNetV2>(MobileNetV2Spec::from_json(spec_json));
  if (arch == "resnet") return std::make_shared<ResNet>(ResNetSpec::from_json(spec_json));
  throw ConfigError("spec describes " + (arch.empty() ? "no architecture" : "a " + arch) +
                    ", not a resnet or mobilenetv2");
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
