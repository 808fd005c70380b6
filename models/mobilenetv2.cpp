#include "models/mobilenetv2.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "compress/batch_norm.h"
#include "compress/conv_variants.h"
#include "compress/mac_counter.h"

namespace adascale::trainer {
namespace {

namespace nn = torch::nn;
using compress::ConvBn;
using nlohmann::json;

// channel counts and block counts a spec may name: far above any network this trains, low enough
// that no product of them overflows
constexpr int64_t kMaxChannels = 1 << 16;
constexpr size_t kMaxBlocks = 1024;

torch::Tensor clamp6(const torch::Tensor& x) { return torch::hardtanh(x, 0.0, 6.0); }

// a 1x1 convolution and its BN, optionally low-rank: a 1x1 reduce to `rank` channels first
struct PointwiseBn : nn::Module {
  PointwiseBn(int64_t in, int64_t out, int64_t rank)
      : conv(register_module(
            "conv", compress::make_conv(rank > 0 ? rank : in, out, {1, 1}, {1, 1}, {0, 0}, 1))),
        bn(register_module("bn", nn::BatchNorm2d(out))) {
    if (rank > 0)
      reduce = register_module("reduce", compress::make_conv(in, rank, {1, 1}, {1, 1}, {0, 0}, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return compress::batch_norm(
        *bn, compress::conv_forward(*conv, reduce ? compress::conv_forward(*reduce, x) : x));
  }
  nn::Conv2d conv, reduce{nullptr};
  nn::BatchNorm2d bn;
};

struct InvertedResidual : nn::Module {
  explicit InvertedResidual(const InvertedResidualSpec& s) : residual(s.residual()) {
    if (s.expand)
      expand =
          register_module("expand", std::make_shared<PointwiseBn>(s.in, s.hidden, s.expand_rank));
    depthwise = register_module(
        "depthwise", std::make_shared<ConvBn>(s.hidden, s.hidden, 3, s.stride, s.hidden));
    project =
        register_module("project", std::make_shared<PointwiseBn>(s.hidden, s.out, s.project_rank));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = expand ? clamp6(expand->forward(x)) : x;
    y = project->forward(clamp6(depthwise->forward(y)));
    return residual ? y + x : y;
  }
  bool residual;
  std::shared_ptr<PointwiseBn> expand, project;
  std::shared_ptr<ConvBn> depthwise;
};

}  // namespace

MobileNetV2Spec MobileNetV2Spec::from_config(const ModelConfig& c, int64_t in_channels,
                                             int64_t classes) {
  MobileNetV2Spec s;
  s.in_channels = in_channels;
  s.stem = c.stem_width;
  s.classes = classes;
  int64_t in = c.stem_width;
  for (size_t st = 0; st < c.widths.size(); ++st) {
    std::vector<InvertedResidualSpec> stage;
    for (int64_t b = 0; b < c.depths[st]; ++b) {
      InvertedResidualSpec blk;
      blk.in = in;
      blk.out = c.widths[st];
      blk.stride = (b == 0 && st > 0) ? 2 : 1;
      // the first stage keeps expansion 1, as in MobileNetV2
      blk.expand = st > 0 && c.expansion != 1;
      blk.hidden = blk.expand ? in * c.expansion : in;
      stage.push_back(blk);
      in = blk.out;
    }
    s.stages.push_back(stage);
  }
  return s;
}

std::string MobileNetV2Spec::to_json() const {
  json stages_j = json::array();
  for (const auto& stage : stages) {
    json blocks = json::array();
    for (const auto& b : stage) {
      json block = {{"in", b.in},
                    {"hidden", b.hidden},
                    {"out", b.out},
                    {"stride", b.stride},
                    {"expand", b.expand}};
      // (written only when factored: older readers refuse nothing they could build)
      if (b.expand_rank) block["expand_rank"] = b.expand_rank;
      if (b.project_rank) block["project_rank"] = b.project_rank;
      blocks.push_back(block);
    }
    stages_j.push_back(blocks);
  }
  return json{{"arch", "mobilenetv2"},
              {"in_channels", in_channels},
              {"stem", stem},
              {"classes", classes},
              {"stages", stages_j}}
      .dump();
}

MobileNetV2Spec MobileNetV2Spec::from_json(const std::string& text) {
  try {
    const json j = json::parse(text);
    const auto arch = j.at("arch").get<std::string>();
    if (arch != "mobilenetv2") throw ConfigError("spec is a " + arch + ", not a mobilenetv2");
    MobileNetV2Spec s;
    s.in_channels = j.at("in_channels").get<int64_t>();
    s.stem = j.at("stem").get<int64_t>();
    s.classes = j.at("classes").get<int64_t>();
    size_t blocks = 0;
    for (const auto& stage_j : j.at("stages")) {
      std::vector<InvertedResidualSpec> stage;
      for (const auto& b : stage_j) {
        if (++blocks > kMaxBlocks)
          throw ConfigError("mobilenetv2 spec: more than " + std::to_string(kMaxBlocks) +
                            " blocks");
        InvertedResidualSpec blk;
        blk.in = b.at("in").get<int64_t>();
        blk.hidden = b.at("hidden").get<int64_t>();
        blk.out = b.at("out").get<int64_t>();
        blk.stride = b.at("stride").get<int64_t>();
        blk.expand = b.at("expand").get<bool>();
        blk.expand_rank = b.value("expand_rank", int64_t{0});
        blk.project_rank = b.value("project_rank", int64_t{0});
        stage.push_back(blk);
      }
      s.stages.push_back(stage);
    }
    s.validate();
    return s;
  } catch (const json::exception& e) {
    throw ConfigError(std::string("malformed mobilenetv2 spec: ") + e.what());
  }
}

void MobileNetV2Spec::validate() const {
  auto fail = [](const std::string& why) { throw ConfigError("mobilenetv2 spec: " + why); };
  auto count = [&](int64_t v, const std::string& what) {
    if (v < 1 || v > kMaxChannels)
      fail(what + " is " + std::to_string(v) + ", not in [1, " + std::to_string(kMaxChannels) +
           "]");
  };
  count(in_channels, "in_channels");
  count(stem, "the stem width");
  count(classes, "the class count");
  if (stages.empty()) fail("needs at least one stage");
  int64_t in = stem;
  for (size_t s = 0; s < stages.size(); ++s) {
    if (stages[s].empty()) fail("stage " + std::to_string(s + 1) + " has no blocks");
    for (size_t b = 0; b < stages[s].size(); ++b) {
      const auto& blk = stages[s][b];
      const std::string where = "block " + std::to_string(s) + "." + std::to_string(b);
      if (blk.in != in)
        fail(where + " takes " + std::to_string(blk.in) + " channels, gets " + std::to_string(in));
      count(blk.hidden, where + "'s expansion width");
      count(blk.out, where + "'s output width");
      if (!blk.expand && blk.hidden != blk.in)
        fail(where + " does not expand but has " + std::to_string(blk.hidden) + " hidden channels");
      if (blk.stride != 1 && blk.stride != 2) fail(where + " stride must be 1 or 2");
      if (blk.expand_rank &&
          (!blk.expand || blk.expand_rank < 0 || blk.expand_rank > std::min(blk.in, blk.hidden)))
        fail(where + "'s expansion rank " + std::to_string(blk.expand_rank) +
             " is not in [1, min(in, hidden)] of an expanding block");
      if (blk.project_rank < 0 || blk.project_rank > std::min(blk.hidden, blk.out))
        fail(where + "'s projection rank " + std::to_string(blk.project_rank) +
             " is not in [1, min(hidden, out)]");
      in = blk.out;
    }
  }
  // every factor is at most 2^16 and there are at most 2^10 blocks: no sum below overflows
  if (parameters() > kMaxParameters)
    fail("describes " + std::to_string(parameters()) + " parameters, more than " +
         std::to_string(kMaxParameters));
}

int64_t MobileNetV2Spec::parameters() const {
  auto conv_bn = [](int64_t in, int64_t out, int64_t k, int64_t groups) {
    return out * (in / groups) * k * k + 2 * out;  // weight, BN scale and shift
  };
  // a factored 1x1: in -> rank, then rank -> out with its BN
  auto pointwise = [&](int64_t in, int64_t out, int64_t rank) {
    return rank ? in * rank + conv_bn(rank, out, 1, 1) : conv_bn(in, out, 1, 1);
  };
  int64_t n = conv_bn(in_channels, stem, 3, 1), last = stem;
  for (const auto& stage : stages)
    for (const auto& b : stage) {
      if (b.expand) n += pointwise(b.in, b.hidden, b.expand_rank);
      n += conv_bn(b.hidden, b.hidden, 3, b.hidden) + pointwise(b.hidden, b.out, b.project_rank);
      last = b.out;
    }
  return n + last * classes + classes;
}

std::string MobileNetV2Spec::describe() const {
  std::ostringstream o;
  o << "mobilenetv2 stem" << stem << " stages";
  for (size_t s = 0; s < stages.size(); ++s) {
    o << (s ? " |" : "");
    for (const auto& b : stages[s]) {
      o << " " << b.hidden << "/" << b.out;
      if (b.expand_rank || b.project_rank) o << "~r" << b.expand_rank << "," << b.project_rank;
    }
  }
  return o.str();
}

MobileNetV2::MobileNetV2(MobileNetV2Spec spec) : spec_(std::move(spec)) {
  spec_.validate();
  stem_ = register_module("stem", std::make_shared<ConvBn>(spec_.in_channels, spec_.stem, 3));
  stages_ = register_module("stages", nn::ModuleList());
  int64_t last = spec_.stem;
  for (const auto& stage_spec : spec_.stages) {
    auto stage = nn::ModuleList();
    for (const auto& b : stage_spec) {
      stage->push_back(std::make_shared<InvertedResidual>(b));
      last = b.out;
    }
    stages_->push_back(stage);
  }
  fc_ = register_module("fc", nn::Linear(last, spec_.classes));
}

torch::Tensor MobileNetV2::forward(torch::Tensor x) {
  x = clamp6(std::dynamic_pointer_cast<ConvBn>(stem_)->forward(x));
  for (auto& stage : *stages_)
    for (auto& block : *stage->as<nn::ModuleList>()) x = block->as<InvertedResidual>()->forward(x);
  x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  return compress::linear_forward(*fc_, x);
}

std::vector<std::vector<BlockSlots>> MobileNetV2::stages() const {
  std::vector<std::vector<BlockSlots>> out(spec_.stages.size());
  for (size_t s = 0; s < spec_.stages.size(); ++s)
    for (size_t b = 0; b < spec_.stages[s].size(); ++b) {
      const std::string name = "stages." + std::to_string(s) + "." + std::to_string(b);
      BlockSlots block{name, {}};
      if (spec_.stages[s][b].expand) block.conv_slots.push_back(name + ".expand");
      block.conv_slots.push_back(name + ".depthwise");
      block.conv_slots.push_back(name + ".project");
      out[s].push_back(block);
    }
  return out;
}

std::string spec_architecture(const std::string& spec_json) {
  const auto j = json::parse(spec_json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("arch") || !j.at("arch").is_string()) return "";
  return j.at("arch").get<std::string>();
}

}  // namespace adascale::trainer
