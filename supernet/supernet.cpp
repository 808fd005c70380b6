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

std::string variant_key(const std::string& op, const std::string& slot) { return op + "|" + slot; }

std::string op_of(const BranchChoice& b) { return b.op.name(); }

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
    if (branch(b).op.kind == OperatorKind::kFire) fire_dims_[b] = fire_ordered_dims(specs_[b]);
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
      if (branch(t).exit_stage == last && branch(t).depth.full() &&
          branch(t).op.same_variant(branch(b).op) && branch(t).width == branch(b).width) {
        exits_of_[t].push_back(b);
        for (const auto& [name, shape] : shapes_[b])
          if (auto it = bn_params_[t].find(name);
              it != bn_params_[t].end() && !exit_tensors_[b].count(name))
            bn_params_[b][name] = it->second;
      }
  }
  reset_exit_blocks();
  // the sandwich's extremes classify after the last stage (the smallest may be shallow): an early
  // exit trains only through its full-depth branch's passes (exit blocks, supernet.exit_weight)
  // and is fitted after training
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
  if (name.rfind("stages.", 0) == 0 && c.op.kind != OperatorKind::kConv) {
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

}  // namespace adascale::trainer
