#include "trainer/supernet.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "base/durable_file.h"
#include "compress/conv_variants.h"
#include "compress/low_rank.h"
#include "compress/mac_counter.h"
#include "trainer/checkpoint.h"
#include "trainer/progress.h"

namespace adascale::trainer {
namespace {

namespace F = torch::nn::functional;
using nlohmann::json;
namespace fs = std::filesystem;

constexpr char kCheckpointName[] = "checkpoint.h5";

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto b = item.find_first_not_of(" \t");
    const auto e = item.find_last_not_of(" \t");
    out.push_back(b == std::string::npos ? "" : item.substr(b, e - b + 1));
  }
  return out;
}

double parse_number(const std::string& key, const std::string& item) {
  char* end = nullptr;
  const double v = std::strtod(item.c_str(), &end);
  if (item.empty() || *end != '\0' || !std::isfinite(v))
    throw ConfigError("config key '" + key + "': '" + item + "' is not a number");
  return v;
}

std::string fixed2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// channels inside an exit block, as a fraction of the exit's: half keeps a bundle of every branch
// within 1.5x the largest branch's bytes
constexpr double kExitBlockMid = 0.5;

int64_t scaled(int64_t channels, double width) {
  return std::max<int64_t>(1, std::lround(channels * width));
}

std::string stage_list(const std::vector<int64_t>& stages) {
  std::string s;
  for (size_t i = 0; i < stages.size(); ++i) s += (i ? "/" : "") + std::to_string(stages[i] + 1);
  return s;
}

std::string block_prefix(size_t s, size_t b) {
  return "stages." + std::to_string(s) + "." + std::to_string(b);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// a fire slot squeezes to a quarter of its output channels (SqueezeNet's ratio, and the one of
// `adascale compress --ops fire`), counted at the branch's own width
constexpr double kFireSqueeze = 0.25;
int64_t fire_squeeze(int64_t out) { return compress::fire_squeeze_channels(out, kFireSqueeze); }

// the squeeze channels of every fire slot in importance order (|BN scale| times the L1 norm of
// the expand weights that read the channel): distillation leaves them in no order, and a narrow
// branch keeps the leading ones
void order_fire_squeezes(CompressedResNet& model) {
  for (size_t s = 0; s < model.spec.stages.size(); ++s)
    for (size_t k = 0; k < model.spec.stages[s].size(); ++k)
      for (const char* slot : {".conv1", ".conv2"}) {
        const std::string p = block_prefix(s, k) + slot;
        if (!model.state.count(p + ".squeeze.weight")) continue;
        auto& st = model.state;
        const auto use = st.at(p + ".expand1.weight").abs().sum({0, 2, 3}) +
                         st.at(p + ".expand3.weight").abs().sum({0, 2, 3});
        const auto order = torch::argsort(st.at(p + ".squeeze_bn.weight").abs() * use, 0, true);
        for (const char* t : {".squeeze.weight", ".squeeze_bn.weight", ".squeeze_bn.bias",
                              ".squeeze_bn.running_mean", ".squeeze_bn.running_var"})
          st[p + t] = st.at(p + t).index_select(0, order).contiguous();
        for (const char* t : {".expand1.weight", ".expand3.weight"})
          st[p + t] = st.at(p + t).index_select(1, order).contiguous();
      }
}

// the module name of a tensor ("stages.1.0.bn1" of "stages.1.0.bn1.weight")
std::string module_of(const std::string& name) { return name.substr(0, name.rfind('.')); }

// for a physical branch spec with fire slots: the dimensions of each module's tensors that run
// over a fire-ordered channel space (an output of a fire slot, or one a residual addition joins
// to it); the other channel dimensions keep their leading channels as usual
std::map<std::string, std::vector<int64_t>> fire_ordered_dims(const ResNetSpec& spec) {
  int spaces = 0;
  auto add = [&] { return spaces++; };
  std::vector<std::pair<std::string, std::vector<std::pair<int64_t, int>>>> uses;
  std::set<int> fire;
  const int stem = add();
  uses.push_back({"stem.conv", {{0, stem}}});
  uses.push_back({"stem.bn", {{0, stem}}});
  int in = stem;
  for (size_t s = 0; s < spec.stages.size(); ++s)
    for (size_t k = 0; k < spec.stages[s].size(); ++k) {
      const auto& blk = spec.stages[s][k];
      const std::string p = block_prefix(s, k);
      const int mid = add();
      // an identity shortcut adds the block's input to its output: one channel space
      const int out = blk.has_shortcut_conv() ? add() : in;
      for (int slot = 1; slot <= 2; ++slot) {
        const auto& ss = slot == 1 ? blk.conv1 : blk.conv2;
        const int from = slot == 1 ? in : mid, to = slot == 1 ? mid : out;
        const std::string name = p + ".conv" + std::to_string(slot);
        if (ss.kind == "fire") {
          fire.insert(to);
          uses.push_back({name + ".squeeze", {{1, from}}});
        } else if (ss.kind == "conv") {
          uses.push_back({name, {{0, to}, {1, from}}});
        } else {
          throw std::logic_error("supernet: a fire branch with a " + ss.kind + " slot");
        }
      }
      uses.push_back({p + ".bn1", {{0, mid}}});
      uses.push_back({p + ".bn2", {{0, out}}});
      if (blk.has_shortcut_conv()) {
        uses.push_back({p + ".shortcut.conv", {{0, out}, {1, in}}});
        uses.push_back({p + ".shortcut.bn", {{0, out}}});
      }
      in = out;
    }
  uses.push_back({"fc", {{1, in}}});
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& [module, dims] : uses)
    for (const auto& [dim, space] : dims)
      if (fire.count(space)) out[module].push_back(dim);
  return out;
}

// named parameters and buffers of a module, by name
std::map<std::string, torch::Tensor> tensors_of(const torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters(true)) out[p.key()] = p.value();
  for (const auto& p : m.named_buffers(true)) out[p.key()] = p.value();
  return out;
}

torch::Tensor narrow_to(torch::Tensor t, const std::vector<int64_t>& shape) {
  if (t.dim() != static_cast<int64_t>(shape.size()))
    throw std::logic_error("supernet: tensor rank differs from the branch's");
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.size(d) != shape[d]) t = t.narrow(d, 0, shape[d]);
  return t;
}

void write_text_atomic(const std::string& path, const std::string& text) {
  std::string error;
  if (!base::write_file_atomic(path, text.data(), text.size(), &error)) throw ConfigError(error);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// branch space

BranchSpace BranchSpace::from_config(const SupernetConfig& c, const ResNetSpec& base) {
  BranchSpace sp;
  const int64_t stages = static_cast<int64_t>(base.stages.size());
  for (const auto& item : split_list(c.widths)) {
    const double w = parse_number("supernet.widths", item);
    if (!(w > 0.0 && w <= 1.0))
      throw ConfigError("config key 'supernet.widths': width " + item + " is not in (0, 1]");
    auto check = [&](int64_t channels, const std::string& layer) {
      if (std::lround(channels * w) < 1)
        throw ConfigError("config key 'supernet.widths': width " + item + " leaves " + layer +
                          " (" + std::to_string(channels) + " channels) with none");
    };
    check(base.stem, "the stem");
    for (size_t s = 0; s < base.stages.size(); ++s)
      for (size_t b = 0; b < base.stages[s].size(); ++b) {
        check(base.stages[s][b].mid, block_prefix(s, b) + ".conv1");
        check(base.stages[s][b].out, block_prefix(s, b) + ".conv2");
      }
    for (double prev : sp.widths)
      if (fixed2(prev) == fixed2(w))
        throw ConfigError("config key 'supernet.widths': width " + item + " is listed twice");
    sp.widths.push_back(w);
  }
  if (sp.widths.empty()) throw ConfigError("config key 'supernet.widths' is empty");
  std::sort(sp.widths.rbegin(), sp.widths.rend());

  for (const auto& item : split_list(c.ops)) {
    std::string op;
    if (item == "conv" || item == "dpconv" || item == "fire") {
      op = item;
    } else if (item.rfind("lowrank", 0) == 0 && item.size() > 7) {
      const double f = parse_number("supernet.ops", item.substr(7));
      if (!(f > 0.0 && f <= 1.0))
        throw ConfigError("config key 'supernet.ops': rank fraction of '" + item +
                          "' is not in (0, 1]");
      op = "lowrank" + fixed2(f);
    } else {
      throw ConfigError("config key 'supernet.ops': unknown operator '" + item +
                        "' (known: conv, dpconv, fire, lowrankF with F the rank fraction)");
    }
    if (std::find(sp.ops.begin(), sp.ops.end(), op) != sp.ops.end())
      throw ConfigError("config key 'supernet.ops': '" + item + "' is listed twice");
    sp.ops.push_back(op);
  }
  if (sp.ops.empty()) throw ConfigError("config key 'supernet.ops' is empty");

  auto stage_numbers = [&](const std::string& key, const std::string& text) {
    std::set<int64_t> out;
    for (int64_t s : parse_int_list(text, key)) {
      if (s < 1 || s > stages)
        throw ConfigError("config key '" + key + "': stage " + std::to_string(s) +
                          " does not exist (the network has " + std::to_string(stages) +
                          " stages, counted from 1)");
      out.insert(s - 1);
    }
    return std::vector<int64_t>(out.begin(), out.end());
  };
  if (c.op_stages.empty()) {
    for (int64_t s = std::max<int64_t>(0, stages - 2); s < stages; ++s) sp.op_stages.push_back(s);
  } else {
    sp.op_stages = stage_numbers("supernet.op_stages", c.op_stages);
  }
  if (!c.exits.empty()) sp.exits = stage_numbers("supernet.exits", c.exits);
  if (sp.exits.empty() || sp.exits.back() != stages - 1) sp.exits.push_back(stages - 1);

  for (const auto& item : split_list(c.precisions)) {
    if (item != "fp32" && item != "int8")
      throw ConfigError("config key 'supernet.precisions': unknown precision '" + item +
                        "' (known: fp32, int8)");
    if (std::find(sp.precisions.begin(), sp.precisions.end(), item) != sp.precisions.end())
      throw ConfigError("config key 'supernet.precisions': '" + item + "' is listed twice");
    sp.precisions.push_back(item);
  }
  if (sp.precisions.empty()) throw ConfigError("config key 'supernet.precisions' is empty");
  if (c.exit_head != "linear" && c.exit_head != "block")
    throw ConfigError("config key 'supernet.exit_head': unknown head '" + c.exit_head +
                      "' (known: linear, block)");
  sp.exit_head = c.exit_head;
  // an exit block starts from the leading channels of the next stage's first block, at every width
  if (sp.exit_head == "block")
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

  // a fire slot splits its output between a 1x1 and a 3x3 expand: two channels at least, at
  // every width, in the op stages and in the exit blocks that take the op
  if (std::find(sp.ops.begin(), sp.ops.end(), "fire") != sp.ops.end())
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

  for (double w : sp.widths)
    for (const auto& op : sp.ops)
      for (int64_t exit : sp.exits) {
        // an op whose stages all lie beyond the exit (and its block) changes nothing: that branch
        // is the conv one
        const int64_t reach = exit + (c.exit_head == "block" && exit + 1 < stages ? 1 : 0);
        if (op != "conv" && sp.op_stages.front() > reach) continue;
        BranchChoice b;
        b.width = w;
        b.op = op.rfind("lowrank", 0) == 0 ? "lowrank" : op;
        b.rank_fraction = b.op == "lowrank" ? std::stod(op.substr(7)) : 0.0;
        b.exit_stage = exit;
        b.name = "w" + fixed2(w);
        if (op != "conv") b.name += ">" + op + "@" + stage_list(sp.op_stages);
        if (exit != stages - 1) b.name += ">exit@" + std::to_string(exit + 1);
        sp.branches.push_back(b);
      }
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

// ---------------------------------------------------------------------------------------------
// the network

namespace {

std::string variant_key(const std::string& op, const std::string& slot) { return op + "|" + slot; }

std::string op_of(const BranchChoice& b) {
  return b.op == "lowrank" ? "lowrank" + fixed2(b.rank_fraction) : b.op;
}

// registered module names may not contain dots
std::string module_name(const std::string& text) {
  std::string out;
  for (char ch : text) out += (ch == '.' || ch == '|') ? '_' : ch;
  return out;
}

}  // namespace

Supernet::Supernet(ResNetSpec base, BranchSpace space, int64_t height, int64_t width)
    : space_(std::move(space)), height_(height), width_(width) {
  base.validate();
  base_ = register_module("base", std::make_shared<ResNet>(base));
  const auto& spec = base_->spec();
  for (const auto& op : space_.ops) {
    if (op == "conv") continue;
    for (int64_t s : space_.op_stages)
      for (size_t b = 0; b < spec.stages[s].size(); ++b) {
        const auto& blk = spec.stages[s][b];
        for (int slot = 1; slot <= 2; ++slot) {
          const int64_t in = slot == 1 ? blk.in : blk.mid;
          const int64_t out = slot == 1 ? blk.mid : blk.out;
          ConvSlotSpec vs;
          vs.kind = op.rfind("lowrank", 0) == 0 ? "lowrank" : op;
          if (vs.kind == "fire") vs.squeeze = fire_squeeze(out);
          if (vs.kind == "lowrank")
            vs.rank = std::max<int64_t>(
                1, std::lround(std::stod(op.substr(7)) * std::min(in * 3, out * 3)));
          const std::string name = block_prefix(s, b) + ".conv" + std::to_string(slot);
          variants_[variant_key(op, name)] =
              register_module(module_name("v_" + op + "_" + name),
                              compress::make_conv_slot(vs, in, out, 3, slot == 1 ? blk.stride : 1));
        }
      }
  }
  base_tensors_ = tensors_of(*base_);
  for (const auto& [key, module] : variants_) variant_tensors_[key] = tensors_of(*module);
  for (size_t b = 0; b < branch_count(); ++b) specs_.push_back(make_branch_spec(b));
  // shapes and costs of every branch, from its physical ResNet
  bn_stats_.resize(branch_count());
  bn_params_.resize(branch_count());
  for (size_t b = 0; b < branch_count(); ++b) {
    ResNet physical(specs_[b]);
    std::map<std::string, std::vector<int64_t>> shapes;
    for (const auto& [name, t] : tensors_of(physical)) shapes[name] = t.sizes().vec();
    shapes_.push_back(std::move(shapes));
    macs_.push_back(measure_cost(physical, spec.in_channels, height_, width_).macs);
  }
  fire_dims_.resize(branch_count());
  for (size_t b = 0; b < branch_count(); ++b)
    if (branch(b).op == "fire") fire_dims_[b] = fire_ordered_dims(specs_[b]);
  // every early-exit branch has a head of its own: one head shared by trunks of different widths
  // and operators has to serve features that have little in common
  const int64_t last = static_cast<int64_t>(spec.stages.size()) - 1;
  for (size_t b = 0; b < branch_count(); ++b) {
    if (branch(b).exit_stage == last) continue;
    auto& own = exit_tensors_[b];
    if (space_.exit_head == "linear") {
      const int64_t in = specs_[b].stages.back().back().out;
      auto head =
          register_module("exit_head" + std::to_string(b), torch::nn::Linear(in, spec.classes));
      own["fc.weight"] = head->weight;
      own["fc.bias"] = head->bias;
      continue;
    }
    // the exit block and its classifier: the block's weights are shared by the exits of one
    // operator and stage (the widest holds them, narrower ones use the leading channels, as in
    // the trunk); BN scales, shifts and statistics and the classifier, which is refitted per exit
    // after training, are private to each exit
    size_t owner = b;
    for (size_t o = 0; o < b; ++o)  // widths descend: the first one found is the widest
      if (branch(o).exit_stage == branch(b).exit_stage && op_of(branch(o)) == op_of(branch(b)) &&
          branch(o).width > branch(b).width) {
        owner = o;
        break;
      }
    const std::string prefix = exit_block_prefix(b) + ".";
    for (const auto& [name, shape] : shapes_[b]) {
      if (name.rfind(prefix, 0) != 0 && name.rfind("fc.", 0) != 0) continue;
      if (ends_with(name, ".running_mean") || ends_with(name, ".running_var") ||
          ends_with(name, ".num_batches_tracked"))
        continue;
      const auto dot = name.rfind('.');
      const bool bn = shapes_[b].count(name.substr(0, dot) + ".running_mean") > 0;
      if (owner != b && !bn && name.rfind("fc.", 0) != 0)
        own[name] = exit_tensors_.at(owner).at(name);
      else
        own[name] = register_parameter(module_name("exit" + std::to_string(b) + "_" + name),
                                       torch::zeros(shape));
    }
  }
  // private BN affine parameters per (width, op); an early-exit branch uses those of its
  // full-depth twin, whose trunk it is
  for (size_t b = 0; b < branch_count(); ++b) {
    if (branch(b).exit_stage != last) continue;
    for (const auto& [name, shape] : shapes_[b]) {
      if (!ends_with(name, ".running_mean")) continue;
      const std::string bn = name.substr(0, name.size() - std::string(".running_mean").size());
      for (const char* field : {".weight", ".bias"})
        bn_params_[b][bn + field] =
            register_parameter(module_name("bn" + std::to_string(b) + "_" + bn + field),
                               tensor(b, bn + field).detach().clone());
    }
  }
  exits_of_.assign(branch_count(), {});
  for (size_t b = 0; b < branch_count(); ++b) {
    if (branch(b).exit_stage == last) continue;
    for (size_t t = 0; t < branch_count(); ++t)
      if (branch(t).exit_stage == last && branch(t).op == branch(b).op &&
          branch(t).width == branch(b).width &&
          branch(t).rank_fraction == branch(b).rank_fraction) {
        exits_of_[t].push_back(b);
        for (const auto& [name, shape] : shapes_[b])
          if (auto it = bn_params_[t].find(name);
              it != bn_params_[t].end() && !exit_tensors_[b].count(name))
            bn_params_[b][name] = it->second;
      }
  }
  reset_exit_blocks();
  // the sandwich's extremes are full-depth branches: an early exit trains only through its
  // full-depth branch's passes (exit blocks, supernet.exit_weight) and is fitted after training
  for (size_t b = 0; b < branch_count(); ++b)
    if (macs_[b] > macs_[largest_]) largest_ = b;
  smallest_ = largest_;
  for (size_t b = 0; b < branch_count(); ++b)
    if (!is_early_exit(b) && macs_[b] < macs_[smallest_]) smallest_ = b;
  active_ = largest_;
}

ResNetSpec Supernet::make_branch_spec(size_t b) const {
  const auto& c = branch(b);
  ResNetSpec s = base_->spec();
  s.stem = scaled(s.stem, c.width);
  s.stages.resize(c.exit_stage + 1);
  const bool substituted = c.op != "conv";
  for (size_t st = 0; st < s.stages.size(); ++st) {
    const bool op_stage =
        substituted && std::find(space_.op_stages.begin(), space_.op_stages.end(),
                                 static_cast<int64_t>(st)) != space_.op_stages.end();
    for (size_t k = 0; k < s.stages[st].size(); ++k) {
      auto& blk = s.stages[st][k];
      blk.in = scaled(blk.in, c.width);
      blk.mid = scaled(blk.mid, c.width);
      blk.out = scaled(blk.out, c.width);
      if (!op_stage) continue;
      for (int slot = 1; slot <= 2; ++slot) {
        auto& ss = slot == 1 ? blk.conv1 : blk.conv2;
        ss.kind = c.op;
        if (c.op == "fire") ss.squeeze = fire_squeeze(slot == 1 ? blk.mid : blk.out);
        if (c.op == "lowrank") {
          const auto& v = variant_tensors_.at(
              variant_key(op_of(c), block_prefix(st, k) + ".conv" + std::to_string(slot)));
          const int64_t full = v.at("v.weight").size(0);
          ss.rank = scaled(full, c.width);
        }
      }
    }
  }
  const auto& full = base_->spec().stages;
  const size_t next = static_cast<size_t>(c.exit_stage) + 1;
  if (space_.exit_head == "block" && next < full.size()) {
    // the exit block: the next stage's first block at the exit's channel count (kExitBlockMid
    // of it inside), with the branch's operator when that stage takes it
    BlockSpec blk;
    blk.in = blk.out = s.stages.back().back().out;
    blk.mid = scaled(blk.out, kExitBlockMid);
    blk.stride = full[next].front().stride;
    if (substituted && std::find(space_.op_stages.begin(), space_.op_stages.end(),
                                 static_cast<int64_t>(next)) != space_.op_stages.end())
      for (int slot = 1; slot <= 2; ++slot) {
        auto& ss = slot == 1 ? blk.conv1 : blk.conv2;
        ss.kind = c.op;
        if (c.op == "fire") ss.squeeze = fire_squeeze(slot == 1 ? blk.mid : blk.out);
        // the rank fraction of the op, of the block's own channel counts
        if (c.op == "lowrank")
          ss.rank = std::max<int64_t>(1, std::lround(c.rank_fraction * 3 *
                                                     std::min(slot == 1 ? blk.in : blk.mid,
                                                              slot == 1 ? blk.mid : blk.out)));
      }
    s.stages.push_back({blk});
  }
  return s;
}

std::string Supernet::exit_block_prefix(size_t e) const {
  return block_prefix(static_cast<size_t>(branch(e).exit_stage) + 1, 0);
}

torch::Tensor Supernet::source(size_t b, const std::string& name) const {
  const auto& c = branch(b);
  // a branch's own BN statistics and affine parameters win over every shared tensor
  if (ends_with(name, ".running_mean") || ends_with(name, ".running_var")) {
    auto it = bn_stats_[b].find(name);
    if (it != bn_stats_[b].end()) return it->second;
  }
  if (auto own = exit_tensors_.find(b); own != exit_tensors_.end()) {
    auto it = own->second.find(name);
    if (it != own->second.end()) return it->second;
  }
  if (b < bn_params_.size()) {
    auto it = bn_params_[b].find(name);
    if (it != bn_params_[b].end()) return it->second;
  }
  if (name.rfind("stages.", 0) == 0 && c.op != "conv") {
    // "stages.S.B.convN.<rest>" of an op stage lives in the op's variant module
    const auto d1 = name.find('.', 7), d2 = name.find('.', d1 + 1), d3 = name.find('.', d2 + 1);
    const std::string slot = name.substr(0, d3);
    auto it = variant_tensors_.find(variant_key(op_of(c), slot));
    if (it != variant_tensors_.end() && d3 != std::string::npos) {
      auto t = it->second.find(name.substr(d3 + 1));
      if (t != it->second.end()) return t->second;
    }
  }
  auto it = base_tensors_.find(name);
  if (it == base_tensors_.end()) throw std::logic_error("supernet: no source for " + name);
  return it->second;
}

torch::Tensor Supernet::select(size_t b, const std::string& name, torch::Tensor t,
                               const std::vector<int64_t>& shape) const {
  if (!fire_dims_[b].empty()) {
    auto it = fire_dims_[b].find(module_of(name));
    if (it != fire_dims_[b].end())
      for (int64_t d : it->second)
        if (d < t.dim() && t.size(d) != shape.at(d))
          t = t.index_select(d, compress::fire_channel_index(shape[d], t.size(d)));
  }
  return narrow_to(t, shape);
}

torch::Tensor Supernet::tensor(size_t b, const std::string& name) const {
  return select(b, name, source(b, name), shapes_[b].at(name));
}

torch::Tensor Supernet::batch_norm(size_t b, const std::string& name, const torch::Tensor& x) {
  auto w = tensor(b, name + ".weight"), bias = tensor(b, name + ".bias");
  if (is_training()) return torch::batch_norm(x, w, bias, {}, {}, true, 0.1, 1e-5, false);
  return torch::batch_norm(x, w, bias, tensor(b, name + ".running_mean"),
                           tensor(b, name + ".running_var"), false, 0.1, 1e-5, false);
}

namespace {
// a convolution in the memory orders that suit oneDNN and the BatchNorm after it
torch::Tensor conv(const torch::Tensor& x, const torch::Tensor& w, torch::IntArrayRef stride,
                   torch::IntArrayRef padding, int64_t groups = 1) {
  return compress::conv_output(
      torch::conv2d(compress::conv_input(x), w, {}, stride, padding, 1, groups));
}
}  // namespace

torch::Tensor Supernet::slot_forward(size_t b, const std::string& name, const ConvSlotSpec& spec,
                                     const torch::Tensor& x, int64_t stride) {
  if (spec.kind == "conv") return conv(x, tensor(b, name + ".weight"), stride, 1);
  if (spec.kind == "lowrank") {
    auto v = conv(x, tensor(b, name + ".v.weight"), {stride, 1}, {1, 0});
    return conv(v, tensor(b, name + ".h.weight"), {1, stride}, {0, 1});
  }
  if (spec.kind == "dpconv") {
    auto dw = conv(x, tensor(b, name + ".dw.weight"), stride, 1, x.size(1));
    dw = torch::relu(batch_norm(b, name + ".dw_bn", dw));
    return conv(dw, tensor(b, name + ".pw.weight"), 1, 0);
  }
  if (spec.kind == "fire") {
    auto sq = conv(x, tensor(b, name + ".squeeze.weight"), stride, 0);
    sq = torch::relu(batch_norm(b, name + ".squeeze_bn", sq));
    return torch::cat({conv(sq, tensor(b, name + ".expand1.weight"), 1, 0),
                       conv(sq, tensor(b, name + ".expand3.weight"), 1, 1)},
                      1);
  }
  throw std::logic_error("supernet: no forward for " + spec.kind);
}

torch::Tensor Supernet::forward_features(size_t b, const torch::Tensor& input) {
  return trunk(b, input, nullptr);
}

torch::Tensor Supernet::forward_with_exits(size_t b, const torch::Tensor& input,
                                           std::vector<torch::Tensor>* exit_logits,
                                           bool detach_exits) {
  std::vector<torch::Tensor> stages;
  const auto& exits = exits_of_.at(b);
  auto logits = torch::linear(trunk(b, input, exits.empty() ? nullptr : &stages),
                              tensor(b, "fc.weight"), tensor(b, "fc.bias"));
  exit_logits->clear();
  for (size_t e : exits) {
    const auto& x = stages.at(static_cast<size_t>(branch(e).exit_stage));
    exit_logits->push_back(exit_head(e, detach_exits ? x.detach() : x));
  }
  return logits;
}

torch::Tensor Supernet::exit_head(size_t e, const torch::Tensor& x) {
  auto y = x;
  if (space_.exit_head == "block")
    y = block_forward(e, specs_[e].stages.back().front(), exit_block_prefix(e), y);
  return torch::linear(torch::adaptive_avg_pool2d(y, {1, 1}).flatten(1), tensor(e, "fc.weight"),
                       tensor(e, "fc.bias"));
}

torch::Tensor Supernet::block_forward(size_t b, const BlockSpec& blk, const std::string& p,
                                      const torch::Tensor& x) {
  auto y = slot_forward(b, p + ".conv1", blk.conv1, x, blk.stride);
  y = torch::relu(batch_norm(b, p + ".bn1", y));
  y = batch_norm(b, p + ".bn2", slot_forward(b, p + ".conv2", blk.conv2, y, 1));
  auto shortcut = x;
  if (blk.has_shortcut_conv())
    shortcut = batch_norm(b, p + ".shortcut.bn",
                          conv(x, tensor(b, p + ".shortcut.conv.weight"), blk.stride, 0));
  return torch::relu(y + shortcut);
}

torch::Tensor Supernet::trunk(size_t b, const torch::Tensor& input,
                              std::vector<torch::Tensor>* stages) {
  const ResNetSpec& spec = specs_[b];
  auto x = conv(input, tensor(b, "stem.conv.weight"), 1, 1);
  x = torch::relu(batch_norm(b, "stem.bn", x));
  for (size_t s = 0; s < spec.stages.size(); ++s)
    for (size_t k = 0; k < spec.stages[s].size(); ++k) {
      x = block_forward(b, spec.stages[s][k], block_prefix(s, k), x);
      if (stages && k + 1 == spec.stages[s].size()) stages->push_back(x);
    }
  return torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
}

torch::Tensor Supernet::forward_branch(size_t b, const torch::Tensor& input) {
  return torch::linear(forward_features(b, input), tensor(b, "fc.weight"), tensor(b, "fc.bias"));
}

torch::Tensor Supernet::forward(torch::Tensor x) { return forward_branch(active_, x); }

std::shared_ptr<ResNet> Supernet::physical(size_t b) const {
  const auto m = materialize(b);
  auto model = std::make_shared<ResNet>(m.spec);
  load_module_state(*model, m.state, "branch " + branch(b).name);
  model->eval();
  return model;
}

CompressedResNet Supernet::materialize(size_t b) const {
  torch::NoGradGuard no_grad;
  CompressedResNet out;
  out.spec = specs_[b];
  for (const auto& [name, shape] : shapes_[b])
    out.state[name] = tensor(b, name).detach().clone().contiguous();
  return out;
}

void Supernet::set_branch_bn_stats(size_t b, const compress::StateDict& stats) {
  auto& dst = bn_stats_.at(b);
  dst.clear();
  for (const auto& [name, t] : stats) {
    auto it = shapes_[b].find(name);
    if (it == shapes_[b].end() || t.sizes().vec() != it->second)
      throw std::invalid_argument("supernet: BN statistic " + name + " does not fit branch " +
                                  branch(b).name);
    dst[name] = t.detach().clone();
  }
}

void Supernet::load_variant(const std::string& op, const compress::StateDict& state) {
  torch::NoGradGuard no_grad;
  for (auto& [key, module] : variants_) {
    if (key.rfind(op + "|", 0) != 0) continue;
    const std::string slot = key.substr(op.size() + 1);
    for (auto& [rest, t] : tensors_of(*module)) {
      auto it = state.find(slot + "." + rest);
      if (it == state.end() || it->second.sizes() != t.sizes())
        throw std::invalid_argument("supernet: variant " + op + " lacks " + slot + "." + rest);
      t.copy_(it->second);
    }
  }
}

void Supernet::reset_private_bn() {
  torch::NoGradGuard no_grad;
  auto own = std::move(bn_params_);
  bn_params_.assign(branch_count(), {});  // lookups fall through to the shared tensors
  for (size_t b = 0; b < own.size(); ++b)
    for (auto& [name, t] : own[b]) t.copy_(tensor(b, name));
  bn_params_ = std::move(own);
}

void Supernet::reset_exit_blocks() {
  if (space_.exit_head != "block") return;
  torch::NoGradGuard no_grad;
  for (size_t t = 0; t < branch_count(); ++t)
    for (size_t e : exits_of_[t])
      for (auto& [name, x] : exit_tensors_.at(e))
        x.copy_(select(e, name, source(t, name), x.sizes().vec()));
}

void Supernet::fit_exit_heads(const torch::Tensor& images, const torch::Tensor& labels,
                              double distill_weight, int64_t steps) {
  if (exit_tensors_.empty()) return;
  torch::NoGradGuard no_grad;
  const bool was_training = is_training();
  eval();
  const auto target = forward_branch(largest_, images).to(torch::kFloat64);
  const auto soft_target = torch::softmax(target, 1);
  for (auto& [b, head] : exit_tensors_) {
    const auto f = forward_features(b, images).to(torch::kFloat64);
    const auto x = torch::cat({f, torch::ones({f.size(0), 1}, f.options())}, 1);
    // ridge regression: a small multiple of the mean feature energy keeps the fit well posed
    auto gram = x.t().mm(x);
    gram += 1e-3 * gram.diagonal().mean() * torch::eye(gram.size(0), gram.options());
    auto solution = torch::linalg::solve(gram, x.t().mm(target), /*left=*/true);
    if (labels.defined() && steps > 0) {
      // then the classifier itself: cross-entropy on the labels mixed with the largest
      // branch's soft answers, full batch on the fixed features (a convex problem). the loss
      // (1 - d) ce(labels) + d ce(soft) has the logits' gradient softmax - ((1 - d) onehot +
      // d soft), so the steps are a handful of matrix ops instead of an autograd graph and an
      // optimizer (the same adam as libtorch's defaults, 3x faster)
      const auto n = static_cast<double>(x.size(0));
      const auto mix = (1 - distill_weight) * F::one_hot(labels, target.size(1)).to(x.dtype()) +
                       distill_weight * soft_target;
      const auto xt = x.t().contiguous();
      const double lr = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
      auto m = torch::zeros_like(solution), v = torch::zeros_like(solution);
      for (int64_t step = 1; step <= steps; ++step) {
        const auto g = xt.mm(torch::softmax(x.mm(solution), 1).sub_(mix)).div_(n);
        m.mul_(beta1).add_(g, 1 - beta1);
        v.mul_(beta2).addcmul_(g, g, 1 - beta2);
        const double c1 = 1 - std::pow(beta1, step), c2 = 1 - std::pow(beta2, step);
        solution.addcdiv_(m, v.sqrt().div_(std::sqrt(c2)).add_(eps), -lr / c1);
      }
    }
    head.at("fc.weight").copy_(solution.slice(0, 0, f.size(1)).t());
    head.at("fc.bias").copy_(solution[f.size(1)]);
  }
  train(was_training);
}

std::string Supernet::describe() const {
  return "supernet of " + std::to_string(branch_count()) + " branches over " +
         base_->spec().describe();
}

std::string Supernet::spec_json() const {
  std::vector<int64_t> op_stages, exits;
  for (auto s : space_.op_stages) op_stages.push_back(s + 1);
  for (auto s : space_.exits) exits.push_back(s + 1);
  json j = {{"arch", "supernet"},
            {"base", json::parse(base_->spec().to_json())},
            {"widths", space_.widths},
            {"ops", space_.ops},
            {"op_stages", op_stages},
            {"exits", exits},
            {"precisions", space_.precisions},
            {"input_size", {height_, width_}}};
  if (space_.exit_head != "linear") j["exit_head"] = space_.exit_head;  // older readers: linear
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
    SupernetConfig c;
    auto join = [](const auto& values) {
      std::ostringstream o;
      o.precision(17);
      for (size_t i = 0; i < values.size(); ++i) o << (i ? "," : "") << values[i];
      return o.str();
    };
    c.widths = join(j.at("widths").get<std::vector<double>>());
    c.ops = join(j.at("ops").get<std::vector<std::string>>());
    c.op_stages = join(j.at("op_stages").get<std::vector<int64_t>>());
    c.exits = join(j.at("exits").get<std::vector<int64_t>>());
    if (j.contains("precisions"))
      c.precisions = join(j.at("precisions").get<std::vector<std::string>>());
    c.exit_head = j.value("exit_head", "linear");
    const auto size = j.at("input_size").get<std::vector<int64_t>>();
    if (size.size() != 2) throw ConfigError("malformed supernet spec: input_size");
    auto net =
        std::make_shared<Supernet>(base, BranchSpace::from_config(c, base), size[0], size[1]);
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
// training

namespace {

struct BranchEval {
  double accuracy = 0;
  int64_t params = 0, macs = 0;
};

void recalibrate_branch(Supernet& net, size_t b, const torch::Tensor& cal) {
  auto physical = net.physical(b);
  recalibrate_batchnorm(*physical, cal);
  compress::StateDict stats;
  for (const auto& [name, t] : module_state(*physical))
    if (ends_with(name, ".running_mean") || ends_with(name, ".running_var")) stats[name] = t;
  net.set_branch_bn_stats(b, stats);
}

BranchEval evaluate_branch(Supernet& net, size_t b, data::BatchLoader& loader, int64_t classes,
                           const std::vector<int64_t>& chw) {
  auto physical = net.physical(b);
  BranchEval e;
  e.accuracy = evaluate(*physical, loader, classes).accuracy;
  const auto cost = measure_cost(*physical, chw[0], chw[1], chw[2]);
  e.params = cost.params;
  e.macs = cost.macs;
  return e;
}

// the branches of supernet.every_step, checked: full-depth, neither the largest nor the smallest
std::vector<size_t> every_step_branches(const Supernet& net, const std::string& names) {
  std::vector<size_t> out;
  for (const auto& name : split_list(names)) {
    const int b = net.space().find(name);
    auto fail = [&](const std::string& why) {
      throw ConfigError("supernet.every_step: '" + name + "' " + why);
    };
    if (b < 0) fail("is not a branch of the space");
    if (net.is_early_exit(b))
      fail("is an early exit; exits train in the passes of their full-depth branch");
    if (static_cast<size_t>(b) == net.largest() || static_cast<size_t>(b) == net.smallest())
      fail("is the largest or the smallest branch, which train in every step anyway");
    if (std::find(out.begin(), out.end(), static_cast<size_t>(b)) != out.end())
      fail("is named twice");
    out.push_back(b);
  }
  return out;
}

void check_backbone(const std::string& path, const ResNetSpec& base,
                    const std::vector<int64_t>& chw, int64_t classes) {
  const Checkpoint ck = read_checkpoint(path);
  if (ck.input_shape != chw || static_cast<int64_t>(ck.class_names.size()) != classes)
    throw ConfigError("supernet.backbone '" + path +
                      "' was trained on another input shape or class count");
  const bool same = !ck.spec.empty() && !Supernet::is_supernet_spec(ck.spec) &&
                    ResNetSpec::from_json(ck.spec).to_json() == base.to_json();
  if (!same)
    throw ConfigError("supernet.backbone '" + path + "' is a different architecture (" +
                      ck.architecture + ") from the config's model (" + base.describe() + ")");
}

// a branch's forward pass in the joint phase, its exits' logits into `exits` when they train with
// it (their features detached when `detach_exits`)
torch::Tensor joint_pass(Supernet& net, size_t b, const torch::Tensor& images,
                         std::vector<torch::Tensor>* exits, bool with_exits, bool detach_exits) {
  exits->clear();
  return with_exits ? net.forward_with_exits(b, images, exits, detach_exits)
                    : net.forward_branch(b, images);
}
}  // namespace

void student_backward(Supernet& net, const torch::Tensor& images,
                      const std::vector<StudentPass>& students, const StudentLoss& loss,
                      bool with_exits, bool detach_exits, int threads) {
  const auto params = net.parameters();
  std::vector<std::vector<torch::Tensor>> grads(students.size());
  auto run = [&](size_t i) {
    const auto& s = students[i];
    const auto x = images.slice(0, s.start, s.start + s.rows);
    std::vector<torch::Tensor> exits;
    auto logits = joint_pass(net, s.branch, x, &exits, with_exits, detach_exits);
    grads[i] = torch::autograd::grad({loss(logits, exits, s.start, s.rows)}, params, {},
                                     /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
  };
  const int workers = std::min<int>(threads, static_cast<int>(students.size()));
  if (workers <= 1) {
    for (size_t i = 0; i < students.size(); ++i) run(i);
  } else {
    // the caller's thread is one of the workers; every worker runs its convolutions on one
    // intra-op thread, restored on the caller's afterwards
    const int saved = at::get_num_threads();
    std::atomic<size_t> next{0};
    std::mutex failed;
    std::exception_ptr error;
    auto work = [&] {
      at::set_num_threads(1);
      for (size_t i; (i = next++) < students.size();) try {
          run(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(failed);
          if (!error) error = std::current_exception();
        }
    };
    std::vector<std::thread> pool;
    for (int w = 1; w < workers; ++w) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    at::set_num_threads(saved);
    if (error) std::rethrow_exception(error);
  }
  torch::NoGradGuard no_grad;
  for (const auto& g : grads)
    for (size_t k = 0; k < params.size(); ++k) {
      if (!g[k].defined()) continue;
      auto& to = params[k].mutable_grad();
      // (a gradient tensor can be shared by two parameters, so it is copied, never adopted)
      if (to.defined())
        to.add_(g[k]);
      else
        to = g[k].clone();
    }
}

TrainOutcome train_supernet(const TrainConfig& config, std::ostream& log) {
  config.validate();
  const auto total_t0 = std::chrono::steady_clock::now();
  torch::set_num_threads(config.train.threads);
  RunData rd = load_run_data(config);
  const auto shape = rd.train->shape();
  const std::vector<int64_t> chw{shape.channels, shape.height, shape.width};
  const int64_t classes = rd.train->num_classes();
  const auto& sc = config.supernet;

  // everything the user can get wrong is checked before the first step
  const ResNetSpec base = ResNetSpec::from_config(config.model, shape.channels, classes);
  BranchSpace space = BranchSpace::from_config(sc, base);
  if (!sc.backbone.empty()) check_backbone(sc.backbone, base, chw, classes);
  torch::manual_seed(config.train.seed);
  auto net = std::make_shared<Supernet>(base, space, shape.height, shape.width);
  const auto every_step = every_step_branches(*net, sc.every_step);
  ensure_writable_dir(config.out_dir);

  log << "branch space: " << net->branch_count() << " branches (widths x ops x exits), from "
      << std::fixed << std::setprecision(2) << net->branch_macs(net->smallest()) / 1e6 << " to "
      << net->branch_macs(net->largest()) / 1e6 << " M MACs\n";
  for (size_t b = 0; b < net->branch_count(); ++b)
    log << "  " << std::left << std::setw(28) << net->branch(b).name << std::right << std::setw(8)
        << net->branch_macs(b) / 1e6 << " M MACs\n";
  if (std::find(space.precisions.begin(), space.precisions.end(), "int8") != space.precisions.end())
    log << "precision int8: each branch also has an int8 twin, derived from it when evaluated or "
           "exported (calibration on "
        << sc.qat_images << " training images, then the QAT phase: " << sc.qat_steps
        << " fake-quant fine-tuning steps of the twin's own weights)\n";

  json phases = json::array();
  auto phase_done = [&](const std::string& name, std::chrono::steady_clock::time_point t0,
                        int64_t images) {
    const double s = seconds_since(t0);
    phases.push_back({{"phase", name}, {"seconds", s}, {"images", images}});
    log << "phase " << name << " done in " << format_duration(s) << "\n";
  };

  // 1. backbone warm-up: an ordinary training run of the full network
  const bool continuous = sc.joint_schedule == "continue";
  const int64_t horizon = config.train.epochs + sc.joint_epochs;  // of the continued cosine
  std::string backbone_path = sc.backbone;
  double backbone_accuracy = -1;
  {
    const auto t0 = std::chrono::steady_clock::now();
    int64_t images = 0;
    if (backbone_path.empty()) {
      log << "phase 1/5: backbone warm-up, " << config.train.epochs << " epochs\n";
      TrainConfig warm = config;
      warm.supernet = SupernetConfig{};
      if (continuous) warm.train.schedule_epochs = horizon;
      warm.out_dir = (fs::path(config.out_dir) / "backbone").string();
      warm.source = config.source + " (backbone warm-up)";
      auto outcome = train(warm, false, log);
      backbone_path = outcome.checkpoint_path;
      backbone_accuracy = outcome.test.accuracy;
      images = config.train.epochs * static_cast<int64_t>(rd.split.train.size());
    } else {
      log << "phase 1/5: backbone from " << backbone_path << "\n";
    }
    const Checkpoint ck = read_checkpoint(backbone_path);
    load_module_state(net->base(), ck.tensors, backbone_path);
    if (backbone_accuracy < 0) backbone_accuracy = ck.test_accuracy;
    phase_done("warm-up", t0, images);
  }

  // 2. variant initialisation: importance order, SVD factors, distilled substitutions
  torch::Tensor cal, cal_labels;  // (structured bindings cannot be captured by lambdas)
  std::tie(cal, cal_labels) =
      calibration_sample(rd, sc.calibration_images, config.train.seed, rd.stats);
  {
    const auto t0 = std::chrono::steady_clock::now();
    log << "phase 2/5: variant initialisation (importance order, SVD, distillation)\n";
    CompressedResNet full{base, module_state(net->base())};
    for (const auto& group : resnet_channel_groups(base))
      compress::select_channels(full.state, group,
                                compress::importance_order(compress::channel_importance(
                                    group, full.state, compress::Importance::kFilterL1)));
    load_module_state(net->base(), full.state, "importance-ordered backbone");

    for (const auto& op : space.ops) {
      if (op.rfind("lowrank", 0) == 0) {
        net->load_variant(op, lowrank_resnet(full, std::stod(op.substr(7)), space.op_stages).state);
      } else if (op == "dpconv" || op == "fire") {
        compress::DistillOptions d;
        d.steps = sc.distill_steps;
        d.seed = config.train.seed;
        auto sub = substitute_resnet(full, op, kFireSqueeze, space.op_stages, cal, d, &log);
        if (op == "fire") order_fire_squeezes(sub);
        net->load_variant(op, sub.state);
      }
    }
    net->reset_private_bn();
    net->reset_exit_blocks();
    phase_done("variant-init", t0, 0);
  }

  // 3. joint training: sandwich rule with in-place distillation from the largest branch
  int64_t joint_images = 0;
  {
    const auto t0 = std::chrono::steady_clock::now();
    std::string fixed_students;  // every_step's branches, as the log names them
    for (size_t b : every_step) fixed_students += net->branch(b).name + " + ";
    log << "phase 3/5: joint training, " << sc.joint_epochs << " epochs, largest + smallest + "
        << fixed_students << sc.sampled << " sampled branches per step"
        << (sc.student_batch < 1.0
                ? " (students on " + std::to_string(static_cast<int>(100 * sc.student_batch)) +
                      "% of each batch)"
                : std::string())
        << (sc.student_weight < 1.0 ? ", students' losses x" + fixed2(sc.student_weight)
                                    : std::string())
        << (sc.exit_weight > 0
                ? ", early exits from the same passes at weight " + std::to_string(sc.exit_weight)
            : sc.exit_head == "block"
                ? ", exit blocks trained on the detached features of the same passes"
                : std::string())
        << ", "
        << (continuous ? "continuing the warm-up's cosine"
                       : "cosine from " + std::to_string(sc.joint_lr))
        << "\n";
    OptimConfig jo = config.train;
    jo.epochs = sc.joint_epochs;
    jo.lr = continuous ? config.train.lr : sc.joint_lr;
    jo.warmup_epochs = continuous ? config.train.warmup_epochs : 0;
    jo.schedule_epochs = continuous ? horizon : 0;
    jo.schedule = "cosine";
    auto optimizer = make_optimizer(jo, net->parameters());
    TrainConfig jc = config;
    data::BatchLoader loader(rd.train, rd.split.train,
                             train_options(jc, rd.stats, rd.split.train.size()));
    std::unique_ptr<data::BatchLoader> val_loader;
    if (!rd.split.validation.empty())
      val_loader = std::make_unique<data::BatchLoader>(rd.train, rd.split.validation,
                                                       eval_options(config.data, rd.stats));
    const int64_t steps_per_epoch = loader.batches_per_epoch();
    // continue: the warm-up ran the first train.epochs of the same schedule on the same loader
    const int64_t schedule_offset = continuous ? config.train.epochs * steps_per_epoch : 0;
    std::vector<size_t> others;
    for (size_t b = 0; b < net->branch_count(); ++b)
      if (b != net->largest() && b != net->smallest() && !net->is_early_exit(b) &&
          std::find(every_step.begin(), every_step.end(), b) == every_step.end())
        others.push_back(b);
    const auto ce = F::CrossEntropyFuncOptions().label_smoothing(config.train.label_smoothing);
    const double w = sc.distill_weight;
    // exits join the passes of their trunk: with exit_weight > 0 their loss reaches the trunk,
    // otherwise exit blocks learn from its detached features (linear heads are fitted later)
    const bool joint_exits = sc.exit_weight > 0 || sc.exit_head == "block";
    const bool detach_exits = sc.exit_weight == 0;
    const double exit_scale = detach_exits ? 1.0 : sc.exit_weight;
    const int student_threads = sc.student_threads > 0 ? sc.student_threads : config.train.threads;
    std::vector<torch::Tensor> exit_logits;  // the teacher's exits, when they train with it
    for (int64_t epoch = 0; epoch < sc.joint_epochs; ++epoch) {
      net->train();
      // epochs continue the warm-up's numbering so the batches differ from it
      loader.start_epoch(config.train.epochs + epoch);
      ProgressBar bar("joint " + std::to_string(epoch + 1) + "/" + std::to_string(sc.joint_epochs),
                      steps_per_epoch);
      double loss_sum = 0;
      int64_t correct = 0, seen = 0, step = 0;
      while (auto batch = loader.next()) {
        const int64_t global = epoch * steps_per_epoch + step;
        const double lr = learning_rate(jo, schedule_offset + global, steps_per_epoch);
        for (auto& g : optimizer->param_groups()) g.options().set_lr(lr);
        optimizer->zero_grad();
        auto teacher = joint_pass(*net, net->largest(), batch->images, &exit_logits, joint_exits,
                                  detach_exits);
        auto loss = F::cross_entropy(teacher, batch->labels, ce);
        const auto soft = torch::softmax(teacher.detach(), 1);
        // the mix of the students' loss, for a student or an early exit on rows [start, start+m)
        auto student_loss = [&](const torch::Tensor& out, int64_t start, int64_t m) {
          auto part = [&](const torch::Tensor& t) { return t.slice(0, start, start + m); };
          auto l = w * -(part(soft) * torch::log_softmax(out, 1)).sum(1).mean();
          if (w < 1.0) l = l + (1.0 - w) * F::cross_entropy(out, part(batch->labels), ce);
          return l;
        };
        // a loss plus the losses of the exits that trained with it
        auto with_exit_losses = [&](torch::Tensor l, const std::vector<torch::Tensor>& exits,
                                    int64_t start, int64_t m) {
          for (const auto& e : exits) l = l + exit_scale * student_loss(e, start, m);
          return l;
        };
        const int64_t n = batch->labels.size(0);
        with_exit_losses(loss, exit_logits, 0, n).backward();
        std::vector<size_t> students{net->smallest()};
        students.insert(students.end(), every_step.begin(), every_step.end());
        std::mt19937_64 rng(config.train.seed * 1000003ULL + static_cast<uint64_t>(global));
        auto pool = others;
        std::shuffle(pool.begin(), pool.end(), rng);
        for (int64_t i = 0; i < sc.sampled && i < static_cast<int64_t>(pool.size()); ++i)
          students.push_back(pool[i]);
        if (net->smallest() == net->largest()) students.erase(students.begin());
        // each student on its own slice of the batch (all of it at student_batch = 1)
        const int64_t m = std::clamp<int64_t>(
            static_cast<int64_t>(std::ceil(sc.student_batch * static_cast<double>(n))), 1, n);
        std::vector<StudentPass> passes;
        for (size_t i = 0; i < students.size(); ++i)
          passes.push_back({students[i], std::min(static_cast<int64_t>(i) * m % n, n - m), m});
        student_backward(
            *net, batch->images, passes,
            [&](const torch::Tensor& out, const std::vector<torch::Tensor>& exits, int64_t start,
                int64_t rows) {
              // (the exits' losses are not scaled)
              return with_exit_losses(sc.student_weight * student_loss(out, start, rows), exits,
                                      start, rows);
            },
            joint_exits, detach_exits, student_threads);
        optimizer->step();
        joint_images += n + m * static_cast<int64_t>(students.size());
        loss_sum += loss.item<double>() * n;
        correct += teacher.argmax(1).eq(batch->labels).sum().item<int64_t>();
        seen += n;
        ++step;
        bar.update(step, seen, loss_sum / seen, static_cast<double>(correct) / seen);
      }
      bar.finish();
      log << "joint epoch " << epoch + 1 << "/" << sc.joint_epochs << std::fixed
          << std::setprecision(4) << "  largest train loss " << loss_sum / seen << " acc "
          << std::setprecision(2) << 100.0 * correct / seen << "%";
      if (val_loader) {
        // validation of the two extremes after a quick BN recalibration on part of the sample
        const auto quick = cal.slice(0, 0, std::min<int64_t>(cal.size(0), 512));
        for (size_t b : {net->largest(), net->smallest()}) {
          recalibrate_branch(*net, b, quick);
          const auto e = evaluate_branch(*net, b, *val_loader, classes, chw);
          log << "  val " << net->branch(b).name << " " << 100.0 * e.accuracy << "%";
        }
      }
      log << "  " << format_duration(bar.elapsed_seconds()) << std::endl;
    }
    phase_done("joint", t0, joint_images);
  }

  // 4. BN recalibration: every branch gets its own statistics
  {
    const auto t0 = std::chrono::steady_clock::now();
    log << "phase 4/5: BN recalibration of " << net->branch_count() << " branches on "
        << cal.size(0)
        << " images, then early-exit classifiers fitted (labels and the largest branch)\n";
    torch::NoGradGuard no_grad;
    for (size_t b = 0; b < net->branch_count(); ++b) recalibrate_branch(*net, b, cal);
    // labels and the largest branch's answers weigh equally (whatever the joint phase used);
    // classifiers trained jointly are refitted too: a linear head learns slowly by SGD, and after
    // an exit block the refit on recalibrated BN statistics gained 0.3 to 2.8 pt on the 18k
    // comparison (measured with private full-width blocks, docs/results.md)
    net->fit_exit_heads(cal, cal_labels, 0.5);
    phase_done("bn-recalibration", t0, 0);
  }

  // 5. test evaluation of every branch, physically materialized
  json branches = json::array();
  TrainOutcome outcome;
  {
    const auto t0 = std::chrono::steady_clock::now();
    log << "phase 5/5: test evaluation\n";
    data::BatchLoader test_loader(rd.test, data::all_indices(rd.test->size()),
                                  eval_options(config.data, rd.stats));
    log << std::left << std::setw(28) << "branch" << std::right << std::setw(10) << "params"
        << std::setw(10) << "M MACs" << std::setw(10) << "test acc\n";
    for (size_t b = 0; b < net->branch_count(); ++b) {
      const auto e = evaluate_branch(*net, b, test_loader, classes, chw);
      const auto& c = net->branch(b);
      log << std::left << std::setw(28) << c.name << std::right << std::setw(10) << e.params
          << std::setw(10) << std::fixed << std::setprecision(2) << e.macs / 1e6 << std::setw(9)
          << 100.0 * e.accuracy << "%\n";
      branches.push_back({{"name", c.name},
                          {"width", c.width},
                          {"op", c.op},
                          {"exit", c.exit_stage + 1},
                          {"params", e.params},
                          {"macs", e.macs},
                          {"accuracy", e.accuracy}});
      if (b == net->largest()) outcome.test.accuracy = e.accuracy;
    }
    phase_done("test-evaluation", t0, 0);
  }

  const double total = seconds_since(total_t0);
  int64_t train_images = 0;
  for (const auto& p : phases) train_images += p.at("images").get<int64_t>();
  json summary = {{"branches", branches},           {"phases", phases},
                  {"total_seconds", total},         {"train_images", train_images},
                  {"backbone", backbone_path},      {"backbone_accuracy", backbone_accuracy},
                  {"threads", config.train.threads}};
  net->set_extra_json(summary.dump());

  Checkpoint ck;
  ck.config_ini = config.to_ini();
  ck.architecture = net->describe();
  ck.spec = net->spec_json();
  ck.epoch = sc.joint_epochs;
  ck.input_shape = chw;
  ck.class_names = rd.train->class_names();
  ck.normalize_mean = rd.stats.mean;
  ck.normalize_std = rd.stats.std;
  ck.tensors = net->full_state();
  ck.test_accuracy = outcome.test.accuracy;
  outcome.checkpoint_path = (fs::path(config.out_dir) / kCheckpointName).string();
  write_checkpoint(ck, outcome.checkpoint_path);
  write_text_atomic((fs::path(config.out_dir) / "summary.json").string(), summary.dump(2) + "\n");
  outcome.epochs_run = sc.joint_epochs;
  outcome.train_seconds = total;
  log << "multi-branch training: " << format_duration(total) << " in total, " << train_images
      << " training images processed\n";
  return outcome;
}

void train_independent(const TrainConfig& config, std::ostream& log) {
  config.validate();
  RunData rd = load_run_data(config);
  const auto shape = rd.train->shape();
  const int64_t classes = rd.train->num_classes();
  const ResNetSpec base = ResNetSpec::from_config(config.model, shape.channels, classes);
  const Supernet net(base, BranchSpace::from_config(config.supernet, base), shape.height,
                     shape.width);
  const fs::path dir = fs::path(config.out_dir) / "independent";
  ensure_writable_dir(dir.string());
  const fs::path summary_path = dir / "summary.json";
  json done = json::object();
  if (fs::exists(summary_path)) {
    std::ifstream f(summary_path);
    done = json::parse(f, nullptr, false);
    if (!done.is_object() || !done.contains("branches")) done = json::object();
  }
  json rows = done.value("branches", json::array());
  const int64_t epochs = config.train.epochs + config.supernet.joint_epochs;
  for (size_t b = 0; b < net.branch_count(); ++b) {
    const auto& name = net.branch(b).name;
    bool skip = false;
    for (const auto& r : rows) skip = skip || r.at("name") == name;
    if (skip) {
      log << "independent " << name << ": already trained, kept\n";
      continue;
    }
    TrainConfig c = config;
    c.supernet = SupernetConfig{};
    c.train.epochs = epochs;
    c.out_dir = (dir / branch_dir_name(name)).string();
    c.source = config.source + " (independent " + name + ")";
    log << "independent " << b + 1 << "/" << net.branch_count() << ": " << name << ", " << epochs
        << " epochs from scratch\n";
    const auto t0 = std::chrono::steady_clock::now();
    const auto outcome = train(c, false, log, 0, net.branch_spec(b).to_json());
    rows.push_back({{"name", name},
                    {"accuracy", outcome.test.accuracy},
                    {"seconds", seconds_since(t0)},
                    {"images", epochs * static_cast<int64_t>(rd.split.train.size())},
                    {"macs", net.branch_macs(b)}});
    done["branches"] = rows;
    done["epochs"] = epochs;
    done["threads"] = config.train.threads;
    write_text_atomic(summary_path.string(), done.dump(2) + "\n");
  }
  log << "independent training of " << net.branch_count() << " branches: summary in "
      << summary_path.string() << "\n";
}

}  // namespace adascale::trainer
