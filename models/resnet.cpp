#include "models/resnet.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "compress/batch_norm.h"
#include "compress/mac_counter.h"

namespace adascale::trainer {
namespace {

namespace nn = torch::nn;
using nlohmann::json;

using compress::ConvBn;

struct Block : nn::Module {
  explicit Block(const BlockSpec& s)
      : conv1(
            register_module("conv1", compress::make_conv_slot(s.conv1, s.in, s.mid, 3, s.stride))),
        bn1(register_module("bn1", nn::BatchNorm2d(s.mid))),
        conv2(register_module("conv2", compress::make_conv_slot(s.conv2, s.mid, s.out, 3, 1))),
        bn2(register_module("bn2", nn::BatchNorm2d(s.out))) {
    if (s.has_shortcut_conv())
      shortcut = register_module("shortcut", std::make_shared<ConvBn>(s.in, s.out, 1, s.stride));
  }
  torch::Tensor forward(const torch::Tensor& x, const std::string& name,
                        std::map<std::string, torch::Tensor>* capture) {
    if (capture) (*capture)[name + ".conv1"] = x;
    auto y = torch::relu(compress::batch_norm(*bn1, compress::forward_conv_slot(*conv1, x)));
    if (capture) (*capture)[name + ".conv2"] = y;
    y = compress::batch_norm(*bn2, compress::forward_conv_slot(*conv2, y));
    return torch::relu(y + (shortcut ? shortcut->forward(x) : x));
  }
  std::shared_ptr<nn::Module> conv1;
  nn::BatchNorm2d bn1;
  std::shared_ptr<nn::Module> conv2;
  nn::BatchNorm2d bn2;
  std::shared_ptr<ConvBn> shortcut;
};

json slot_to_json(const ConvSlotSpec& s) {
  json j = {{"kind", s.kind}};
  if (s.kind == "lowrank") j["rank"] = s.rank;
  if (s.kind == "fire") j["squeeze"] = s.squeeze;
  return j;
}

ConvSlotSpec slot_from_json(const json& j) {
  ConvSlotSpec s;
  s.kind = j.at("kind").get<std::string>();
  s.rank = j.value("rank", int64_t{0});
  s.squeeze = j.value("squeeze", int64_t{0});
  return s;
}

}  // namespace

ResNetSpec ResNetSpec::from_config(const ModelConfig& c, int64_t in_channels, int64_t classes) {
  ResNetSpec s;
  s.in_channels = in_channels;
  s.stem = c.stem_width;
  s.classes = classes;
  int64_t in = c.stem_width;
  for (size_t st = 0; st < c.widths.size(); ++st) {
    std::vector<BlockSpec> stage;
    for (int64_t b = 0; b < c.depths[st]; ++b) {
      BlockSpec blk;
      blk.in = in;
      blk.mid = blk.out = c.widths[st];
      blk.stride = (b == 0 && st > 0) ? 2 : 1;
      stage.push_back(blk);
      in = c.widths[st];
    }
    s.stages.push_back(stage);
  }
  return s;
}

std::string ResNetSpec::to_json() const {
  json stages_j = json::array();
  for (const auto& stage : stages) {
    json blocks = json::array();
    for (const auto& b : stage)
      blocks.push_back({{"in", b.in},
                        {"mid", b.mid},
                        {"out", b.out},
                        {"stride", b.stride},
                        {"conv1", slot_to_json(b.conv1)},
                        {"conv2", slot_to_json(b.conv2)}});
    stages_j.push_back(blocks);
  }
  json j = {{"arch", "resnet"},
            {"in_channels", in_channels},
            {"stem", stem},
            {"classes", classes},
            {"stages", stages_j}};
  return j.dump();
}

ResNetSpec ResNetSpec::from_json(const std::string& text) {
  try {
    const json j = json::parse(text);
    if (j.at("arch").get<std::string>() != "resnet") throw ConfigError("spec is not a resnet");
    ResNetSpec s;
    s.in_channels = j.at("in_channels").get<int64_t>();
    s.stem = j.at("stem").get<int64_t>();
    s.classes = j.at("classes").get<int64_t>();
    for (const auto& stage_j : j.at("stages")) {
      std::vector<BlockSpec> stage;
      for (const auto& b : stage_j) {
        BlockSpec blk;
        blk.in = b.at("in").get<int64_t>();
        blk.mid = b.at("mid").get<int64_t>();
        blk.out = b.at("out").get<int64_t>();
        blk.stride = b.at("stride").get<int64_t>();
        blk.conv1 = slot_from_json(b.at("conv1"));
        blk.conv2 = slot_from_json(b.at("conv2"));
        stage.push_back(blk);
      }
      s.stages.push_back(stage);
    }
    s.validate();
    return s;
  } catch (const json::exception& e) {
    throw ConfigError(std::string("malformed resnet spec: ") + e.what());
  }
}

void ResNetSpec::validate() const {
  auto fail = [](const std::string& why) { throw ConfigError("resnet spec: " + why); };
  constexpr int64_t kMaxChannels = int64_t{1} << 16, kMaxParameters = int64_t{1} << 28;
  if (in_channels < 1 || stem < 1 || classes < 1) fail("channel and class counts must be >= 1");
  if (in_channels > kMaxChannels || stem > kMaxChannels || classes > kMaxChannels)
    fail("channel and class counts must be at most " + std::to_string(kMaxChannels));
  if (stages.empty()) fail("needs at least one stage");
  size_t blocks = 0;
  // an upper bound of the weights (every factor is bounded, so no sum overflows): a slot holds
  // at most a plain conv's weights plus its factors' or squeeze's, plus a depthwise filter
  auto slot = [](const ConvSlotSpec& s, int64_t in, int64_t out) {
    const int64_t rank = s.kind == "lowrank" ? s.rank : 0;
    const int64_t squeeze = s.kind == "fire" ? s.squeeze : 0;
    return 9 * in * out + 3 * rank * (in + out) + squeeze * (in + 9 * out) + 9 * in;
  };
  int64_t weights = 9 * in_channels * stem + stem * classes;
  int64_t in = stem;
  for (size_t s = 0; s < stages.size(); ++s) {
    if (stages[s].empty()) fail("stage " + std::to_string(s) + " has no blocks");
    for (size_t b = 0; b < stages[s].size(); ++b) {
      const auto& blk = stages[s][b];
      const std::string where = "block " + std::to_string(s) + "." + std::to_string(b);
      if (++blocks > 1024) fail("more than 1024 blocks");
      if (blk.in != in)
        fail(where + " takes " + std::to_string(blk.in) + " channels, gets " + std::to_string(in));
      if (blk.mid < 1 || blk.out < 1) fail(where + " has an empty layer");
      if (blk.mid > kMaxChannels || blk.out > kMaxChannels || blk.conv1.rank > 3 * kMaxChannels ||
          blk.conv2.rank > 3 * kMaxChannels || blk.conv1.squeeze > 3 * kMaxChannels ||
          blk.conv2.squeeze > 3 * kMaxChannels)
        fail(where + " is wider than " + std::to_string(kMaxChannels) + " channels");
      if (blk.stride != 1 && blk.stride != 2) fail(where + " stride must be 1 or 2");
      std::string why;
      if (!compress::check_conv_variant(blk.conv1, blk.in, blk.mid, &why) ||
          !compress::check_conv_variant(blk.conv2, blk.mid, blk.out, &why))
        fail(where + ": " + why);
      weights += slot(blk.conv1, blk.in, blk.mid) + slot(blk.conv2, blk.mid, blk.out) +
                 blk.in * blk.out + 4 * (blk.mid + blk.out);
      if (weights > kMaxParameters)
        fail("describes more than " + std::to_string(kMaxParameters) + " parameters");
      in = blk.out;
    }
  }
}

std::string ResNetSpec::describe() const {
  std::ostringstream o;
  o << "resnet stem" << stem << " stages";
  for (size_t s = 0; s < stages.size(); ++s) {
    o << (s ? " |" : "");
    for (const auto& b : stages[s]) {
      o << " " << b.mid << "/" << b.out;
      for (const auto* slot : {&b.conv1, &b.conv2})
        if (slot->kind != "conv") {
          o << ":" << slot->kind;
          if (slot->kind == "lowrank") o << slot->rank;
          if (slot->kind == "fire") o << slot->squeeze;
        }
    }
  }
  return o.str();
}

ResNet::ResNet(ResNetSpec spec) : spec_(std::move(spec)) {
  spec_.validate();
  stem_ = register_module("stem", std::make_shared<ConvBn>(spec_.in_channels, spec_.stem, 3, 1));
  stages_ = register_module("stages", nn::ModuleList());
  int64_t last = spec_.stem;
  for (const auto& stage_spec : spec_.stages) {
    auto stage = nn::ModuleList();
    for (const auto& b : stage_spec) {
      stage->push_back(std::make_shared<Block>(b));
      last = b.out;
    }
    stages_->push_back(stage);
  }
  fc_ = register_module("fc", nn::Linear(last, spec_.classes));
}

torch::Tensor ResNet::run(torch::Tensor x, std::map<std::string, torch::Tensor>* capture) {
  x = torch::relu(std::dynamic_pointer_cast<ConvBn>(stem_)->forward(x));
  for (size_t s = 0; s < stages_->size(); ++s) {
    auto& stage = *stages_[s]->as<nn::ModuleList>();
    for (size_t b = 0; b < stage.size(); ++b)
      x = stage[b]->as<Block>()->forward(x, "stages." + std::to_string(s) + "." + std::to_string(b),
                                         capture);
  }
  x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  return compress::linear_forward(*fc_, x);
}

torch::Tensor ResNet::forward(torch::Tensor x) { return run(std::move(x), nullptr); }

torch::Tensor ResNet::forward_capture(torch::Tensor x,
                                      std::map<std::string, torch::Tensor>* inputs) {
  return run(std::move(x), inputs);
}

std::vector<std::vector<BlockSlots>> ResNet::stages() const {
  std::vector<std::vector<BlockSlots>> out(spec_.stages.size());
  for (size_t s = 0; s < spec_.stages.size(); ++s)
    for (size_t b = 0; b < spec_.stages[s].size(); ++b) {
      const std::string name = "stages." + std::to_string(s) + "." + std::to_string(b);
      out[s].push_back({name, {name + ".conv1", name + ".conv2"}});
    }
  return out;
}

}  // namespace adascale::trainer
