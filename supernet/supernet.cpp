#include "supernet/supernet.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "compress/conv_variants.h"
#include "compress/low_rank.h"
#include "compress/mac_counter.h"
#include "models/module_state.h"
#include "supernet/detail.h"

namespace adascale::trainer {

using namespace supernet_detail;
using nlohmann::json;
namespace F = torch::nn::functional;

namespace {

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

std::string variant_key(const std::string& op, const std::string& slot) { return op + "|" + slot; }

std::string op_of(const BranchChoice& b) { return b.op.name(); }

}  // namespace

Supernet::Supernet(ResNetSpec base, BranchSpace space, int64_t height, int64_t width)
    : MultiBranchNetwork((base.validate(), std::make_shared<ResNet>(base)), std::move(space),
                         height, width),
      base_(std::static_pointer_cast<ResNet>(backbone_)) {
  const auto& spec = base_->spec();
  for (const auto& variant : space_.ops) {
    if (variant.kind == OperatorKind::kConv) continue;
    const std::string op = variant.name();
    for (int64_t s : space_.op_stages)
      for (size_t b = 0; b < spec.stages[s].size(); ++b) {
        const auto& blk = spec.stages[s][b];
        for (int slot = 1; slot <= 2; ++slot) {
          const int64_t in = slot == 1 ? blk.in : blk.mid;
          const int64_t out = slot == 1 ? blk.mid : blk.out;
          ConvSlotSpec vs;
          vs.kind = variant.kind_name();
          if (variant.kind == OperatorKind::kFire) vs.squeeze = fire_squeeze(out);
          if (variant.kind == OperatorKind::kLowRank)
            vs.rank = std::max<int64_t>(1, std::lround(variant.amount * std::min(in * 3, out * 3)));
          const std::string name = block_prefix(s, b) + ".conv" + std::to_string(slot);
          variants_[variant_key(op, name)] =
              register_module(registered_name("v_" + op + "_" + name),
                              compress::make_conv_slot(vs, in, out, 3, slot == 1 ? blk.stride : 1));
        }
      }
  }
  for (const auto& [key, module] : variants_) variant_tensors_[key] = named_tensors(*module);
  std::vector<std::string> specs;
  for (size_t b = 0; b < branch_count(); ++b) {
    specs_.push_back(make_branch_spec(b));
    specs.push_back(specs_.back().to_json());
  }
  set_branch_specs(std::move(specs), spec.in_channels);
  fire_dims_.resize(branch_count());
  for (size_t b = 0; b < branch_count(); ++b)
    if (branch(b).op.kind == OperatorKind::kFire) fire_dims_[b] = fire_ordered_dims(specs_[b]);
  if (space_.exit_head == "linear")
    add_linear_exit_heads(spec.classes);
  else
    add_exit_blocks();
  add_private_bn();
  reset_exit_blocks();
  pick_extremes();
}

void Supernet::add_exit_blocks() {
  // the exit block and its classifier: the block's weights are shared by the exits of one
  // operator and stage (the widest holds them, narrower ones use the leading channels, as in
  // the trunk); BN scales, shifts and statistics and the classifier, which is refitted per exit
  // after training, are private to each exit
  for (size_t b = 0; b < branch_count(); ++b) {
    if (!is_early_exit(b)) continue;
    auto& own = exit_tensors_[b];
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
        own[name] = register_parameter(registered_name("exit" + std::to_string(b) + "_" + name),
                                       torch::zeros(shape));
    }
  }
}

ResNetSpec Supernet::make_branch_spec(size_t b) const {
  const auto& c = branch(b);
  ResNetSpec s = base_->spec();
  s.stem = scaled(s.stem, c.width);
  s.stages.resize(c.exit_stage + 1);
  const bool substituted = c.op.kind != OperatorKind::kConv;
  for (size_t st = 0; st < s.stages.size(); ++st) {
    // elastic depth: the stage's leading blocks (the first one carries the stride and the
    // channel change, so any prefix keeps the shapes)
    s.stages[st].resize(
        c.depth.blocks_of(static_cast<int64_t>(st), static_cast<int64_t>(s.stages[st].size())));
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
        ss.kind = c.op.kind_name();
        if (c.op.kind == OperatorKind::kFire)
          ss.squeeze = fire_squeeze(slot == 1 ? blk.mid : blk.out);
        if (c.op.kind == OperatorKind::kLowRank) {
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
        ss.kind = c.op.kind_name();
        if (c.op.kind == OperatorKind::kFire)
          ss.squeeze = fire_squeeze(slot == 1 ? blk.mid : blk.out);
        // the rank fraction of the op, of the block's own channel counts
        if (c.op.kind == OperatorKind::kLowRank)
          ss.rank = std::max<int64_t>(1, std::lround(c.op.amount * 3 *
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

torch::Tensor Supernet::variant_source(size_t b, const std::string& name) const {
  const auto& c = branch(b);
  if (name.rfind("stages.", 0) != 0 || c.op.kind == OperatorKind::kConv) return {};
  // "stages.S.B.convN.<rest>" of an op stage lives in the op's variant module
  const auto d1 = name.find('.', 7), d2 = name.find('.', d1 + 1), d3 = name.find('.', d2 + 1);
  if (d3 == std::string::npos) return {};
  auto it = variant_tensors_.find(variant_key(op_of(c), name.substr(0, d3)));
  if (it == variant_tensors_.end()) return {};
  auto t = it->second.find(name.substr(d3 + 1));
  return t == it->second.end() ? torch::Tensor() : t->second;
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
  return MultiBranchNetwork::select(b, name, t, shape);
}

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

torch::Tensor Supernet::exit_head(size_t e, const torch::Tensor& x) {
  if (space_.exit_head != "block") return MultiBranchNetwork::exit_head(e, x);
  return MultiBranchNetwork::exit_head(
      e, block_forward(e, specs_[e].stages.back().front(), exit_block_prefix(e), x));
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

void Supernet::load_variant(const std::string& op, const compress::StateDict& state) {
  torch::NoGradGuard no_grad;
  for (auto& [key, module] : variants_) {
    if (key.rfind(op + "|", 0) != 0) continue;
    const std::string slot = key.substr(op.size() + 1);
    for (auto& [rest, t] : named_tensors(*module)) {
      auto it = state.find(slot + "." + rest);
      if (it == state.end() || it->second.sizes() != t.sizes())
        throw std::invalid_argument("supernet: variant " + op + " lacks " + slot + "." + rest);
      t.copy_(it->second);
    }
  }
}

void Supernet::reset_exit_blocks() {
  if (space_.exit_head != "block") return;
  torch::NoGradGuard no_grad;
  for (size_t t = 0; t < branch_count(); ++t)
    for (size_t e : exits_of_[t])
      for (auto& [name, x] : exit_tensors_.at(e))
        x.copy_(select(e, name, source(t, name), x.sizes().vec()));
}

}  // namespace adascale::trainer
