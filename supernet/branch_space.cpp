#include "supernet/branch_space.h"

#include <algorithm>
#include <set>

#include "supernet/detail.h"

namespace adascale::trainer {

using namespace supernet_detail;

BackboneLayout::BackboneLayout(const ResNetSpec& spec) : arch("resnet"), resnet(spec) {
  layers.push_back({"the stem", spec.stem});
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    blocks.push_back(static_cast<int64_t>(spec.stages[s].size()));
    for (size_t b = 0; b < spec.stages[s].size(); ++b) {
      layers.push_back({block_prefix(s, b) + ".conv1", spec.stages[s][b].mid});
      layers.push_back({block_prefix(s, b) + ".conv2", spec.stages[s][b].out});
    }
  }
}

BackboneLayout::BackboneLayout(const MobileNetV2Spec& spec) : arch("mobilenetv2") {
  layers.push_back({"the stem", spec.stem});
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    blocks.push_back(static_cast<int64_t>(spec.stages[s].size()));
    for (size_t b = 0; b < spec.stages[s].size(); ++b) {
      if (spec.stages[s][b].expand)
        layers.push_back({block_prefix(s, b) + ".expand", spec.stages[s][b].hidden});
      layers.push_back({block_prefix(s, b) + ".project", spec.stages[s][b].out});
    }
  }
}

BranchSpace BranchSpace::from_config(const SupernetConfig& c, const BackboneLayout& base) {
  const int64_t stages = base.stages();
  std::vector<double> widths;
  for (const auto& item : split_list(c.widths))
    widths.push_back(parse_number("supernet.widths", item));
  std::vector<Operator> ops;
  for (const auto& item : split_list(c.ops)) {
    ops.push_back(parse_operator(item, "config key 'supernet.ops'"));
    if (!ops.back().stages.empty())
      throw ConfigError("config key 'supernet.ops': operator '" + item +
                        "' names stages; the op stages are supernet.op_stages");
  }
  auto stage_numbers = [&](const std::string& key, const std::string& text) {
    std::vector<int64_t> out;
    for (int64_t s : parse_int_list(text, key)) {
      if (s < 1 || s > stages)
        throw ConfigError("config key '" + key + "': stage " + std::to_string(s) +
                          " does not exist (the network has " + std::to_string(stages) +
                          " stages, counted from 1)");
      out.push_back(s - 1);
    }
    return out;
  };
  std::vector<int64_t> op_stages, exits;
  if (c.op_stages.empty()) {
    for (int64_t s = std::max<int64_t>(0, stages - 2); s < stages; ++s) op_stages.push_back(s);
  } else {
    op_stages = stage_numbers("supernet.op_stages", c.op_stages);
  }
  if (!c.exits.empty()) exits = stage_numbers("supernet.exits", c.exits);
  return from_lists(widths, ops, op_stages, exits, split_list(c.precisions), c.exit_head, base,
                    split_list(c.depths));
}

std::string DepthChoice::name() const {
  if (full()) return "";
  return "d" + std::to_string(keep) + "/" + std::to_string(of) + "@" + stage_list(stages);
}

int64_t DepthChoice::blocks_of(int64_t s, int64_t blocks) const {
  return std::find(stages.begin(), stages.end(), s) != stages.end() ? std::min(keep, blocks)
                                                                    : blocks;
}

DepthChoice parse_depth(const std::string& text, const BackboneLayout& base,
                        const std::string& where) {
  const auto fail = [&](const std::string& why) {
    throw ConfigError(where + ": depth '" + text + "' " + why);
  };
  // dK/N@S[/S...]
  DepthChoice d;
  const auto at = text.find('@');
  const auto slash = text.find('/');
  if (text.size() < 6 || text[0] != 'd' || at == std::string::npos || slash == std::string::npos ||
      slash > at)
    fail("is not dK/N@S (the first K of N blocks in stage S, e.g. d1/2@3)");
  auto whole = [&](const std::string& item) {
    if (item.empty() || item.size() > 6 || item.find_first_not_of("0123456789") != item.npos)
      fail("is not dK/N@S (the first K of N blocks in stage S, e.g. d1/2@3)");
    return std::stoll(item);
  };
  d.keep = whole(text.substr(1, slash - 1));
  d.of = whole(text.substr(slash + 1, at - slash - 1));
  if (d.keep < 1) fail("keeps no block (K must be 1 or more)");
  if (d.keep >= d.of) fail("is not shallower than the stage (K must be below N)");
  const int64_t stages = base.stages();
  std::vector<std::string> items{""};
  for (char ch : text.substr(at + 1)) {
    if (ch == '/')
      items.emplace_back();
    else
      items.back().push_back(ch);
  }
  for (const auto& item : items) {
    const int64_t s = whole(item);
    if (s < 1 || s > stages)
      fail("names stage " + item + ", which does not exist (the network has " +
           std::to_string(stages) + " stages, counted from 1)");
    const auto blocks = base.blocks[s - 1];
    if (blocks != d.of)
      fail("names stage " + item + ", which has " + std::to_string(blocks) + " block" +
           (blocks == 1 ? "" : "s") + ", not " + std::to_string(d.of));
    if (std::find(d.stages.begin(), d.stages.end(), s - 1) != d.stages.end())
      fail("names stage " + item + " twice");
    d.stages.push_back(s - 1);
  }
  std::sort(d.stages.begin(), d.stages.end());
  return d;
}

namespace {

// fp32 and int8, each once, at least one
std::vector<std::string> checked_precisions(const std::vector<std::string>& precisions,
                                            const std::string& where) {
  std::vector<std::string> out;
  for (const auto& p : precisions) {
    if (p != "fp32" && p != "int8")
      throw ConfigError(where + ": unknown precision '" + p + "' (known: fp32, int8)");
    if (std::find(out.begin(), out.end(), p) != out.end())
      throw ConfigError(where + ": '" + p + "' is listed twice");
    out.push_back(p);
  }
  if (out.empty()) throw ConfigError(where + " is empty");
  return out;
}

// widths in (0, 1], each leaving every layer a channel, listed once; descending
std::vector<double> checked_widths(const std::vector<double>& widths, const BackboneLayout& base) {
  BranchSpace sp;
  for (double w : widths) {
    std::ostringstream text;
    text << w;
    const std::string item = text.str();
    if (!(w > 0.0 && w <= 1.0))
      throw ConfigError("config key 'supernet.widths': width " + item + " is not in (0, 1]");
    auto check = [&](int64_t channels, const std::string& layer) {
      if (std::lround(channels * w) < 1)
        throw ConfigError("config key 'supernet.widths': width " + item + " leaves " + layer +
                          " (" + std::to_string(channels) + " channels) with none");
    };
    for (const auto& [layer, channels] : base.layers) check(channels, layer);
    for (double prev : sp.widths)
      if (fixed2(prev) == fixed2(w))
        throw ConfigError("config key 'supernet.widths': width " + item + " is listed twice");
    sp.widths.push_back(w);
  }

  if (sp.widths.empty()) throw ConfigError("config key 'supernet.widths' is empty");
  std::sort(sp.widths.rbegin(), sp.widths.rend());
  return sp.widths;
}

// conv, dpconv, fire, lowrank F, each once, without stages (those are supernet.op_stages)
std::vector<Operator> checked_ops(std::vector<Operator> ops) {
  BranchSpace sp;
  for (auto& op : ops) {
    if (op.kind == OperatorKind::kPrune)
      throw ConfigError(
          "config key 'supernet.ops': prune is not a branch operator (widths "
          "prune the branches)");
    if (op.kind == OperatorKind::kFire && op.name() != "fire")
      throw ConfigError("config key 'supernet.ops': '" + op.name() +
                        "': a branch space's fire squeezes to the default 0.25 (write fire)");
    op.stages.clear();
    // the fraction as the branch's name writes it (two decimals), so the spec a checkpoint stores
    // rebuilds the same ranks
    if (op.kind == OperatorKind::kLowRank) op.amount = std::stod(fixed2(op.amount));
    for (const auto& seen : sp.ops)
      if (seen.same_variant(op))
        throw ConfigError("config key 'supernet.ops': '" + op.name() + "' is listed twice");
    sp.ops.push_back(op);
  }
  if (sp.ops.empty()) throw ConfigError("config key 'supernet.ops' is empty");
  return sp.ops;
}

// an exit block starts from the leading channels of the next stage's first block, at every width
void check_exit_blocks(const BranchSpace& sp, const ResNetSpec& base) {
  const int64_t stages = static_cast<int64_t>(base.stages.size());
  for (int64_t e : sp.exits) {
    if (e + 1 >= stages) continue;
    const auto& next = base.stages[e + 1].front();
    for (double w : sp.widths) {
      const int64_t ch = scaled(base.stages[e].back().out, w);
      if (ch > scaled(next.out, w) || scaled(ch, kExitBlockMid) > scaled(next.mid, w))
        throw ConfigError("config key 'supernet.exit_head': an exit block after stage " +
                          std::to_string(e + 1) + " (" + std::to_string(ch) +
                          " channels) is wider than the next stage's first block it starts from");
    }
  }
}

// a fire slot splits its output between a 1x1 and a 3x3 expand: two channels at least, at
// every width, in the op stages and in the exit blocks that take the op
void check_fire_widths(const BranchSpace& sp, const ResNetSpec& base) {
  const int64_t stages = static_cast<int64_t>(base.stages.size());
  if (std::any_of(sp.ops.begin(), sp.ops.end(),
                  [](const Operator& op) { return op.kind == OperatorKind::kFire; }))
    for (double w : sp.widths) {
      auto check = [&](int64_t channels, const std::string& where) {
        if (channels >= 2) return;
        throw ConfigError("config key 'supernet.ops': fire needs 2 output channels or more, and " +
                          ("width " + fixed2(w) + " leaves " + where + " with ") +
                          std::to_string(channels));
      };
      for (int64_t s : sp.op_stages)
        for (size_t b = 0; b < base.stages[s].size(); ++b) {
          check(scaled(base.stages[s][b].mid, w), block_prefix(s, b) + ".conv1");
          check(scaled(base.stages[s][b].out, w), block_prefix(s, b) + ".conv2");
        }
      const auto takes_op = [&](int64_t s) {
        return std::find(sp.op_stages.begin(), sp.op_stages.end(), s) != sp.op_stages.end();
      };
      if (sp.exit_head == "block")
        for (int64_t e : sp.exits)
          if (e + 1 < stages && takes_op(e + 1))
            check(scaled(scaled(base.stages[e].back().out, w), kExitBlockMid),
                  "the exit block after stage " + std::to_string(e + 1) + " (inside)");
    }
}

// the product widths x ops x depths x exits, named canonically; a shallower depth is a choice of
// full-depth branches only (an early exit has a trunk and head of its own to train already)
void add_branches(BranchSpace* space, int64_t stages) {
  auto& sp = *space;
  for (double w : sp.widths)
    for (const auto& op : sp.ops)
      for (const auto& depth : sp.depths)
        for (int64_t exit : sp.exits) {
          if (!depth.full() && exit != stages - 1) continue;
          // an op whose stages all lie beyond the exit (and its block) changes nothing: that branch
          // is the conv one
          const int64_t reach = exit + (sp.exit_head == "block" && exit + 1 < stages ? 1 : 0);
          const bool plain = op.kind == OperatorKind::kConv;
          if (!plain && sp.op_stages.front() > reach) continue;
          BranchChoice b;
          b.width = w;
          b.op = op;
          b.exit_stage = exit;
          b.depth = depth;
          b.name = "w" + fixed2(w);
          if (!plain) b.name += ">" + op.name() + "@" + stage_list(sp.op_stages);
          if (!depth.full()) b.name += ">" + depth.name();
          if (exit != stages - 1) b.name += ">exit@" + std::to_string(exit + 1);
          sp.branches.push_back(b);
        }
}

}  // namespace

BranchSpace BranchSpace::from_lists(std::vector<double> widths, std::vector<Operator> ops,
                                    std::vector<int64_t> op_stages, std::vector<int64_t> exits,
                                    std::vector<std::string> precisions,
                                    const std::string& exit_head, const BackboneLayout& base,
                                    const std::vector<std::string>& depths) {
  BranchSpace sp;
  const int64_t stages = base.stages();
  sp.widths = checked_widths(widths, base);
  sp.ops = checked_ops(std::move(ops));
  if (!base.resnet)
    for (const auto& op : sp.ops)
      if (op.kind != OperatorKind::kConv && op.kind != OperatorKind::kLowRank)
        throw ConfigError("config key 'supernet.ops': '" + op.name() + "' does not apply to a " +
                          base.arch +
                          " (its 3x3 convolutions are depthwise already; ops: conv, lowrankF)");
  // stages: sorted, each once, and existing (the spec of a checkpoint is checked here too)
  auto stage_set = [&](const std::string& key, const std::vector<int64_t>& in) {
    std::set<int64_t> out;
    for (int64_t s : in) {
      if (s < 0 || s >= stages)
        throw ConfigError("config key '" + key + "': stage " + std::to_string(s + 1) +
                          " does not exist (the network has " + std::to_string(stages) +
                          " stages, counted from 1)");
      out.insert(s);
    }
    return std::vector<int64_t>(out.begin(), out.end());
  };
  sp.op_stages = stage_set("supernet.op_stages", op_stages);
  if (sp.op_stages.empty()) throw ConfigError("config key 'supernet.op_stages' is empty");
  sp.exits = stage_set("supernet.exits", exits);
  if (sp.exits.empty() || sp.exits.back() != stages - 1) sp.exits.push_back(stages - 1);

  sp.depths.push_back(DepthChoice{});
  if (depths.size() >= kMaxBranches)
    throw ConfigError("config key 'supernet.depths' lists " + std::to_string(depths.size()) +
                      " depths, more than a space of " + std::to_string(kMaxBranches) +
                      " branches holds");
  for (const auto& text : depths) {
    auto d = parse_depth(text, base, "config key 'supernet.depths'");
    for (const auto& seen : sp.depths)
      if (seen.name() == d.name())
        throw ConfigError("config key 'supernet.depths': depth '" + text + "' is listed twice");
    sp.depths.push_back(std::move(d));
  }
  sp.precisions = checked_precisions(precisions, "config key 'supernet.precisions'");
  if (exit_head != "linear" && exit_head != "block")
    throw ConfigError("config key 'supernet.exit_head': unknown head '" + exit_head +
                      "' (known: linear, block)");
  sp.exit_head = exit_head;
  if (!base.resnet && sp.exit_head != "linear")
    throw ConfigError("config key 'supernet.exit_head': a " + base.arch +
                      " branch space has linear exit heads only");
  if (base.resnet) {
    if (sp.exit_head == "block") check_exit_blocks(sp, *base.resnet);
    check_fire_widths(sp, *base.resnet);
  }
  // each branch is a network built, sliced and recalibrated: a space read from a file is bounded
  // before any of them is
  const size_t product = sp.widths.size() * sp.ops.size() * sp.depths.size() * sp.exits.size();
  if (product > kMaxBranches)
    throw ConfigError("the branch space has up to " + std::to_string(product) +
                      " branches (widths x ops x depths x exits), more than " +
                      std::to_string(kMaxBranches));
  add_branches(&sp, stages);
  return sp;
}

int BranchSpace::find(const std::string& name) const {
  for (size_t i = 0; i < branches.size(); ++i)
    if (branches[i].name == name) return static_cast<int>(i);
  return -1;
}

std::vector<BranchRef> BranchSpace::deployable(const std::vector<std::string>& wanted) const {
  std::vector<BranchRef> out;
  for (const auto& p : wanted.empty() ? precisions : wanted)
    for (size_t b = 0; b < branches.size(); ++b)
      out.push_back({b, p == "int8", branches[b].name + (p == "int8" ? ">int8" : "")});
  return out;
}

bool BranchSpace::resolve(const std::string& name, BranchRef* ref) const {
  static const std::string kInt8 = ">int8";
  const bool int8 = name.size() > kInt8.size() &&
                    name.compare(name.size() - kInt8.size(), kInt8.size(), kInt8) == 0;
  const int b = find(int8 ? name.substr(0, name.size() - kInt8.size()) : name);
  if (b < 0) return false;
  *ref = {static_cast<size_t>(b), int8, name};
  return true;
}

std::vector<std::string> parse_precisions(const std::string& text,
                                          const std::vector<std::string>& fallback,
                                          const std::string& where) {
  return text.empty() ? fallback : checked_precisions(split_list(text), where);
}

std::vector<BranchRef> select_branches(const BranchSpace& space, const std::string& text,
                                       const std::vector<std::string>& precisions) {
  if (text == "all") return space.deployable(precisions);
  std::vector<BranchRef> out;
  for (const auto& name : split_list(text)) {
    BranchRef ref;
    if (!space.resolve(name, &ref)) {
      std::string known;
      for (size_t i = 0; i < space.branches.size(); ++i)
        known += (i ? ", " : "") + space.branches[i].name;
      throw ConfigError("--branches: no branch '" + name + "' (branches: " + known +
                        ", each also as NAME>int8)");
    }
    out.push_back(ref);
  }
  if (out.empty()) throw ConfigError("--branches is empty");
  return out;
}

std::string branch_dir_name(const std::string& name) {
  std::string out;
  for (char ch : name) {
    if (ch == '>' || ch == '@')
      out += '_';
    else if (ch == '/')
      out += '-';
    else
      out += ch;
  }
  return out;
}

}  // namespace adascale::trainer
