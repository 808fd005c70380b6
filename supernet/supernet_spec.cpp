// The multi-branch network as a checkpoint stores it: its spec (the base backbone's spec, of
// either family, and the branch space's lists, as JSON), and the network a config describes.
#include <nlohmann/json.hpp>

#include "supernet/detail.h"
#include "supernet/mobilenetv2_supernet.h"
#include "supernet/supernet.h"

namespace adascale::trainer {

using nlohmann::json;

std::string MultiBranchNetwork::spec_json() const {
  std::vector<int64_t> op_stages, exits;
  std::vector<std::string> ops;
  for (const auto& op : space_.ops) ops.push_back(op.name());
  for (auto s : space_.op_stages) op_stages.push_back(s + 1);
  for (auto s : space_.exits) exits.push_back(s + 1);
  json j = {{"arch", "supernet"},
            {"base", json::parse(backbone_->spec_json())},
            {"widths", space_.widths},
            {"ops", ops},
            {"op_stages", op_stages},
            {"exits", exits},
            {"precisions", space_.precisions},
            {"input_size", {height_, width_}}};
  if (space_.exit_head != "linear") j["exit_head"] = space_.exit_head;  // older readers: linear
  std::vector<std::string> depths;
  for (const auto& d : space_.depths)
    if (!d.full()) depths.push_back(d.name());
  // (older readers refuse a checkpoint with depths: its branches and BN statistics do not fit)
  if (!depths.empty()) j["depths"] = depths;
  if (!extra_json_.empty()) j["training"] = json::parse(extra_json_);
  return j.dump();
}

bool is_multi_branch_spec(const std::string& spec_json) {
  return !spec_json.empty() && spec_architecture(spec_json) == "supernet";
}

std::shared_ptr<MultiBranchNetwork> multi_branch_from_spec(const std::string& text) {
  try {
    const json j = json::parse(text);
    const std::string base_json = j.at("base").dump();
    const std::string arch = spec_architecture(base_json);
    if (arch != "resnet" && arch != "mobilenetv2")
      throw ConfigError("supernet spec: its base is a " + (arch.empty() ? "malformed spec" : arch) +
                        ", not a resnet or mobilenetv2");
    std::vector<Operator> ops;
    for (const auto& name : j.at("ops").get<std::vector<std::string>>())
      ops.push_back(parse_operator(name, "supernet spec"));
    // stages are stored counted from 1, as the config writes them
    auto from_one = [](std::vector<int64_t> stages) {
      for (auto& s : stages) --s;
      return stages;
    };
    const auto precisions = j.contains("precisions")
                                ? j.at("precisions").get<std::vector<std::string>>()
                                : std::vector<std::string>{"fp32"};
    const auto size = j.at("input_size").get<std::vector<int64_t>>();
    if (size.size() != 2 || size[0] < 1 || size[1] < 1 || size[0] > 4096 || size[1] > 4096)
      throw ConfigError("malformed supernet spec: input_size");
    auto space_for = [&](const BackboneLayout& layout) {
      return BranchSpace::from_lists(j.at("widths").get<std::vector<double>>(), ops,
                                     from_one(j.at("op_stages").get<std::vector<int64_t>>()),
                                     from_one(j.at("exits").get<std::vector<int64_t>>()),
                                     precisions, j.value("exit_head", "linear"), layout,
                                     j.value("depths", std::vector<std::string>{}));
    };
    std::shared_ptr<MultiBranchNetwork> net;
    if (arch == "mobilenetv2") {
      const auto base = MobileNetV2Spec::from_json(base_json);
      net = std::make_shared<MobileNetV2Supernet>(base, space_for(base), size[0], size[1]);
    } else {
      const auto base = ResNetSpec::from_json(base_json);
      net = std::make_shared<Supernet>(base, space_for(base), size[0], size[1]);
    }
    if (j.contains("training")) net->set_extra_json(j.at("training").dump());
    return net;
  } catch (const json::exception& e) {
    throw ConfigError(std::string("malformed supernet spec: ") + e.what());
  }
}

std::shared_ptr<MultiBranchNetwork> multi_branch_from_config(const TrainConfig& config,
                                                             int64_t channels, int64_t height,
                                                             int64_t width, int64_t classes) {
  const auto& sc = config.supernet;
  if (config.model.arch == "mobilenetv2") {
    const auto base = MobileNetV2Spec::from_config(config.model, channels, classes);
    return std::make_shared<MobileNetV2Supernet>(base, BranchSpace::from_config(sc, base), height,
                                                 width);
  }
  if (config.model.arch != "resnet")
    throw ConfigError("model.arch: a multi-branch network needs a resnet or mobilenetv2, not '" +
                      config.model.arch + "'");
  const auto base = ResNetSpec::from_config(config.model, channels, classes);
  return std::make_shared<Supernet>(base, BranchSpace::from_config(sc, base), height, width);
}

}  // namespace adascale::trainer
