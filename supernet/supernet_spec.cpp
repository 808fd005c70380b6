// The multi-branch network as a checkpoint stores it: its spec (base ResNet + branch space, as
// JSON) and its full state (parameters, buffers and per-branch BN statistics).
#include <nlohmann/json.hpp>

#include "models/module_state.h"
#include "supernet/supernet.h"

namespace adascale::trainer {

using nlohmann::json;

std::vector<std::vector<BlockSlots>> Supernet::stages() const {
  auto out = base_->stages();
  for (auto& stage : out)
    for (auto& block : stage) {
      block.name = "base." + block.name;
      for (auto& slot : block.conv_slots) slot = "base." + slot;
    }
  return out;
}

std::string Supernet::describe() const {
  return "supernet of " + std::to_string(branch_count()) + " branches over " +
         base_->spec().describe();
}

std::string Supernet::spec_json() const {
  std::vector<int64_t> op_stages, exits;
  std::vector<std::string> ops;
  for (const auto& op : space_.ops) ops.push_back(op.name());
  for (auto s : space_.op_stages) op_stages.push_back(s + 1);
  for (auto s : space_.exits) exits.push_back(s + 1);
  json j = {{"arch", "supernet"},
            {"base", json::parse(base_->spec().to_json())},
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

bool Supernet::is_supernet_spec(const std::string& spec_json) {
  if (spec_json.empty()) return false;
  auto j = json::parse(spec_json, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.value("arch", "") == "supernet";
}

std::shared_ptr<Supernet> Supernet::from_spec_json(const std::string& text) {
  try {
    const json j = json::parse(text);
    auto base = ResNetSpec::from_json(j.at("base").dump());
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
    if (size.size() != 2) throw ConfigError("malformed supernet spec: input_size");
    auto space = BranchSpace::from_lists(j.at("widths").get<std::vector<double>>(), ops,
                                         from_one(j.at("op_stages").get<std::vector<int64_t>>()),
                                         from_one(j.at("exits").get<std::vector<int64_t>>()),
                                         precisions, j.value("exit_head", "linear"), base,
                                         j.value("depths", std::vector<std::string>{}));
    auto net = std::make_shared<Supernet>(base, std::move(space), size[0], size[1]);
    if (j.contains("training")) net->set_extra_json(j.at("training").dump());
    return net;
  } catch (const json::exception& e) {
    throw ConfigError(std::string("malformed supernet spec: ") + e.what());
  }
}

compress::StateDict Supernet::full_state() const {
  auto state = module_state(*this);
  for (size_t b = 0; b < branch_count(); ++b)
    for (const auto& [name, t] : bn_stats_[b])
      state["bnstats." + std::to_string(b) + "." + name] = t.contiguous();
  return state;
}

void Supernet::load_full_state(const compress::StateDict& state, const std::string& origin) {
  compress::StateDict own;
  std::vector<compress::StateDict> stats(branch_count());
  for (const auto& [name, t] : state) {
    if (name.rfind("bnstats.", 0) != 0) {
      own[name] = t;
      continue;
    }
    const auto dot = name.find('.', 8);
    const size_t b = std::stoul(name.substr(8, dot - 8));
    if (b >= branch_count()) throw CheckpointError(origin + ": BN statistics of a missing branch");
    stats[b][name.substr(dot + 1)] = t;
  }
  load_module_state(*this, own, origin);
  for (size_t b = 0; b < branch_count(); ++b) set_branch_bn_stats(b, stats[b]);
}

// ---------------------------------------------------------------------------------------------

}  // namespace adascale::trainer
