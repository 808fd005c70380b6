#include "runtime/catalog_json.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "runtime/branch_costs.h"

namespace adascale::catalog_json {

namespace {

json attrs_to_json(const Attrs& attrs) {
  json out = json::object();
  for (const auto& kv : attrs.numbers) {
    if (kv.second.size() == 1)
      out[kv.first] = kv.second[0];
    else
      out[kv.first] = kv.second;
  }
  for (const auto& kv : attrs.strings) out[kv.first] = kv.second;
  return out;
}

}  // namespace

json branch_to_json(const Branch& branch) {
  json nodes = json::array();
  for (const Node& node : branch.nodes)
    nodes.push_back({{"op", node.op},
                     {"inputs", node.inputs},
                     {"output", node.output},
                     {"params", node.params},
                     {"attrs", attrs_to_json(node.attrs)}});
  json costs = json::parse(branch.costs_json, nullptr, false);
  if (costs.is_discarded() || !costs.is_object()) costs = json::object();
  return {{"name", branch.name},
          {"input", branch.input},
          {"output", branch.output},
          {"nodes", nodes},
          {"costs", costs}};
}

// nlohmann converts a floating-point JSON number to an integer or float with a plain cast, which
// is undefined behaviour out of range; numeric catalog fields are therefore checked first.

std::string get_name(const json& j, const std::string& what) {
  if (!j.is_string()) throw CatalogError(what + " must be a string");
  const std::string& text = j.get_ref<const std::string&>();
  if (text.size() > kMaxNameBytes)
    throw CatalogError(what + " is longer than " + std::to_string(kMaxNameBytes) + " bytes");
  return text;
}

void check_count(size_t count, size_t limit, const std::string& what) {
  if (count > limit)
    throw CatalogError(what + ": " + std::to_string(count) + " is more than the limit of " +
                       std::to_string(limit));
}

// nlohmann's parser is iterative, but dump() and recursive walks are not, so a deep value is
// refused before anything recurses on it
json parse_bounded(const std::string& text, int max_depth, bool* too_deep) {
  *too_deep = false;
  json::parser_callback_t limit = [&](int depth, json::parse_event_t, json&) {
    if (depth > max_depth) *too_deep = true;
    return !*too_deep;
  };
  json parsed = json::parse(text, limit, false);
  return *too_deep ? json() : parsed;
}

uint64_t get_u64(const json& j, const std::string& what) {
  if (!j.is_number_unsigned())
    throw CatalogError(what + " must be a non-negative integer, got " + j.dump());
  return j.get<uint64_t>();
}

Shape get_shape(const json& j, const std::string& what) {
  if (!j.is_array()) throw CatalogError(what + " must be a list of integers");
  if (j.size() > kMaxTensorRank)
    throw CatalogError(what + " has more than " + std::to_string(kMaxTensorRank) + " dimensions");
  Shape shape;
  for (const json& dim : j) {
    if (!dim.is_number_integer()) throw CatalogError(what + " must be a list of integers");
    shape.push_back(dim.get<int64_t>());
  }
  return shape;
}

std::vector<float> get_floats(const json& j, const std::string& what) {
  if (!j.is_array()) throw CatalogError(what + " must be a list of numbers");
  check_count(j.size(), kMaxClasses, what + " length");
  std::vector<float> values;
  for (const json& v : j) {
    if (!v.is_number()) throw CatalogError(what + " must be a list of numbers");
    const double d = v.get<double>();
    if (!(std::fabs(d) <= std::numeric_limits<float>::max()))
      throw CatalogError(what + " value out of float range");
    values.push_back(static_cast<float>(d));
  }
  return values;
}

Status format_error(const std::string& message) {
  return error_status(ErrorCode::kFormat, "catalog.json: " + message);
}

Status branch_from_json(const json& j, Branch* branch) {
  if (!j.is_object()) return format_error("branch entry is not an object");
  for (const auto& item : j.items())
    if (item.key() != "name" && item.key() != "input" && item.key() != "output" &&
        item.key() != "nodes" && item.key() != "costs")
      return format_error("branch: unknown key '" + item.key() + "'");
  branch->name = get_name(j.at("name"), "branch name");
  const std::string where = "branch '" + branch->name + "': ";
  branch->input = get_name(j.at("input"), where + "input");
  branch->output = get_name(j.at("output"), where + "output");
  if (j.contains("costs")) {
    if (!j["costs"].is_object()) return format_error(where + "costs must be an object");
    try {
      BranchCosts checked;  // validated here; the text is kept whole, unknown keys included
      from_json(j["costs"], checked);
    } catch (const CatalogError& e) {
      return format_error(where + e.what());
    }
    branch->costs_json = j["costs"].dump();
  }
  const json& nodes = j.at("nodes");
  if (!nodes.is_array()) return format_error(where + "nodes must be an array");
  check_count(nodes.size(), kMaxNodesPerBranch, where + "node count");
  for (const json& jn : nodes) {
    if (!jn.is_object()) return format_error(where + "node entry is not an object");
    Node node;
    node.op = get_name(jn.at("op"), where + "node op");
    node.output = get_name(jn.at("output"), where + "node output");
    const std::string at = where + "node '" + node.output + "': ";
    for (const auto& item : jn.items())
      if (item.key() != "op" && item.key() != "inputs" && item.key() != "output" &&
          item.key() != "params" && item.key() != "attrs")
        return format_error(at + "unknown key '" + item.key() + "'");
    const json& inputs = jn.at("inputs");
    if (!inputs.is_array()) return format_error(at + "inputs must be an array");
    check_count(inputs.size(), kMaxNodeInputs, at + "input count");
    for (const json& in : inputs) node.inputs.push_back(get_name(in, at + "input"));
    if (jn.contains("params")) {
      if (!jn["params"].is_object()) return format_error(at + "params must be an object");
      for (const auto& item : jn["params"].items())
        node.params[item.key()] = get_name(item.value(), at + "param '" + item.key() + "'");
    }
    if (jn.contains("attrs")) {
      if (!jn["attrs"].is_object()) return format_error(at + "attrs must be an object");
      for (const auto& item : jn["attrs"].items()) {
        const json& v = item.value();
        if (v.is_string())
          node.attrs.strings[item.key()] = get_name(v, at + "attr '" + item.key() + "'");
        else if (v.is_number())
          node.attrs.numbers[item.key()] = {v.get<double>()};
        else if (v.is_array() &&
                 std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_number(); }))
          node.attrs.numbers[item.key()] = v.get<std::vector<double>>();
        else
          return format_error(at + "attr '" + item.key() +
                              "' must be a number, a list of numbers or a string");
      }
    }
    branch->nodes.push_back(std::move(node));
  }
  return ok_status();
}

}  // namespace adascale::catalog_json
