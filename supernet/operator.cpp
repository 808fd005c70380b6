#include "supernet/operator.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "supernet/detail.h"

namespace adascale::trainer {
namespace {

using supernet_detail::fixed2;

struct KindName {
  OperatorKind kind;
  const char* name;
  bool has_amount;
};
constexpr KindName kKinds[] = {{OperatorKind::kConv, "conv", false},
                               {OperatorKind::kPrune, "prune", true},
                               {OperatorKind::kLowRank, "lowrank", true},
                               {OperatorKind::kDpConv, "dpconv", false},
                               {OperatorKind::kFire, "fire", true}};

}  // namespace

const char* Operator::kind_name() const {
  for (const auto& k : kKinds)
    if (k.kind == kind) return k.name;
  return "?";
}

std::string Operator::name() const {
  std::string s = kind_name();
  if (kind == OperatorKind::kPrune || kind == OperatorKind::kLowRank ||
      (kind == OperatorKind::kFire && fixed2(amount) != fixed2(kFireDefaultSqueeze)))
    s += fixed2(amount);
  return s;
}

std::string Operator::canonical() const {
  std::string s = name();
  for (size_t i = 0; i < stages.size(); ++i) s += (i ? "/" : "@") + std::to_string(stages[i] + 1);
  return s;
}

Operator parse_operator(const std::string& text, const std::string& where) {
  auto bad = [&](const std::string& why) -> ConfigError {
    return ConfigError(where + ": operator '" + text + "' " + why);
  };
  std::string body = text, stages;
  if (const auto at = body.find('@'); at != std::string::npos) {
    stages = body.substr(at + 1);
    body = body.substr(0, at);
  }
  const KindName* kind = nullptr;
  for (const auto& k : kKinds)
    if (body.rfind(k.name, 0) == 0 &&
        (!kind || std::string(k.name).size() > std::string(kind->name).size()))
      kind = &k;
  if (!kind)
    throw ConfigError(where + ": unknown operator '" + text +
                      "' (known: conv, prune:F, lowrank:F, dpconv, fire[:F])");
  Operator op;
  op.kind = kind->kind;
  std::string amount = body.substr(std::string(kind->name).size());
  if (!amount.empty() && amount[0] == ':') amount = amount.substr(1);
  if (!amount.empty()) {
    if (!kind->has_amount) throw bad("takes no fraction");
    char* end = nullptr;
    op.amount = std::strtod(amount.c_str(), &end);
    if (*end != '\0' || !std::isfinite(op.amount)) throw bad("has a fraction that is not a number");
    if (!(op.amount > 0.0 && op.amount <= 1.0))
      throw bad(std::string("has a ") +
                (op.kind == OperatorKind::kLowRank ? "rank fraction"
                 : op.kind == OperatorKind::kPrune ? "keep fraction"
                                                   : "squeeze ratio") +
                " outside (0, 1]");
  } else if (op.kind == OperatorKind::kPrune || op.kind == OperatorKind::kLowRank) {
    throw bad("needs a fraction, e.g. " + std::string(kind->name) + ":0.5");
  } else if (op.kind == OperatorKind::kFire) {
    op.amount = kFireDefaultSqueeze;
  }
  if (!stages.empty()) {
    std::stringstream st(stages);
    std::string s;
    while (std::getline(st, s, '/')) {
      char* end = nullptr;
      const long long v = std::strtoll(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0')
        throw bad("has a stage list that is not numbers separated by /");
      if (v < 1 || v > 1024) throw bad("has a stage outside 1..1024 (stages are counted from 1)");
      op.stages.push_back(v - 1);
    }
  }
  return op;
}

std::vector<Operator> parse_compress_ops(const std::string& text) {
  std::vector<Operator> ops;
  std::stringstream ss(text);
  std::string item;
  bool substituted = false;
  while (std::getline(ss, item, ',')) {
    Operator op = parse_operator(item, "--ops");
    if (op.kind == OperatorKind::kConv)
      throw ConfigError(
          "--ops: operator 'conv' changes nothing (known: prune:F, lowrank:F, "
          "dpconv, fire[:F])");
    if (op.kind == OperatorKind::kPrune && substituted)
      throw ConfigError("--ops: operator '" + item +
                        "': pruning must come before lowrank, dpconv and fire (it needs plain "
                        "convolutions)");
    if (op.kind != OperatorKind::kPrune) substituted = true;
    ops.push_back(op);
  }
  if (ops.empty()) throw ConfigError("--ops: no compression operators given");
  return ops;
}

std::string canonical_ops_name(const std::vector<Operator>& ops) {
  std::string s;
  for (size_t i = 0; i < ops.size(); ++i) s += (i ? ">" : "") + ops[i].canonical();
  return s;
}

std::vector<int64_t> operator_stages(const Operator& op, size_t stage_count) {
  if (!op.stages.empty()) return op.stages;
  std::vector<int64_t> all;
  const size_t first = (op.kind == OperatorKind::kPrune || stage_count < 2) ? 0 : stage_count - 2;
  for (size_t s = first; s < stage_count; ++s) all.push_back(static_cast<int64_t>(s));
  return all;
}

void check_resnet_operators(const std::vector<Operator>& ops, const std::string& where) {
  for (const auto& op : ops)
    if (op.kind == OperatorKind::kPrune && !op.stages.empty())
      throw ConfigError(where + "--ops " + op.canonical() +
                        ": pruning a resnet applies to the whole network (its residual chains "
                        "cross stages; no @stages)");
}

CompressedResNet apply_operators(const CompressedResNet& model, const std::vector<Operator>& ops,
                                 const torch::Tensor& calibration, std::ostream* log) {
  check_resnet_operators(ops, "");
  CompressedResNet m = model;
  for (const auto& op : ops) {
    if (log) *log << "applying " << op.canonical() << "\n";
    const auto stages = operator_stages(op, m.spec.stages.size());
    switch (op.kind) {
      case OperatorKind::kConv:
        break;
      case OperatorKind::kPrune:
        m = prune_resnet(m, op.amount);
        break;
      case OperatorKind::kLowRank:
        m = lowrank_resnet(m, op.amount, stages);
        break;
      case OperatorKind::kDpConv:
      case OperatorKind::kFire:
        m = substitute_resnet(m, op.kind_name(), op.amount, stages, calibration, {}, log);
        break;
    }
  }
  return m;
}

}  // namespace adascale::trainer
