#include "supernet/multi_branch_network.h"

#include <cmath>

#include "models/module_state.h"
#include "supernet/detail.h"

namespace adascale::trainer {

using namespace supernet_detail;
namespace F = torch::nn::functional;

namespace {

torch::Tensor narrow_to(torch::Tensor t, const std::vector<int64_t>& shape) {
  if (t.dim() != static_cast<int64_t>(shape.size()))
    throw std::logic_error("multi-branch network: tensor rank differs from the branch's");
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.size(d) != shape[d]) t = t.narrow(d, 0, shape[d]);
  return t;
}

bool is_bn_statistic(const std::string& name) {
  return ends_with(name, ".running_mean") || ends_with(name, ".running_var");
}

}  // namespace

std::map<std::string, torch::Tensor> named_tensors(const torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters(true)) out[p.key()] = p.value();
  for (const auto& p : m.named_buffers(true)) out[p.key()] = p.value();
  return out;
}

std::string registered_name(const std::string& text) {
  std::string out;
  for (char ch : text) out += (ch == '.' || ch == '|') ? '_' : ch;
  return out;
}

MultiBranchNetwork::MultiBranchNetwork(std::shared_ptr<Backbone> base, BranchSpace space,
                                       int64_t height, int64_t width)
    : backbone_(register_module("base", std::move(base))),
      space_(std::move(space)),
      height_(height),
      width_(width) {
  base_tensors_ = named_tensors(*backbone_);
}

std::vector<std::vector<BlockSlots>> MultiBranchNetwork::stages() const {
  auto out = backbone_->stages();
  for (auto& stage : out)
    for (auto& block : stage) {
      block.name = "base." + block.name;
      for (auto& slot : block.conv_slots) slot = "base." + slot;
    }
  return out;
}

std::string MultiBranchNetwork::describe() const {
  return "supernet of " + std::to_string(branch_count()) + " branches over " +
         backbone_->describe();
}

void MultiBranchNetwork::set_branch_specs(std::vector<std::string> specs, int64_t in_channels) {
  branch_specs_ = std::move(specs);
  for (const auto& spec : branch_specs_) {
    auto physical = backbone_from_spec(spec);
    std::map<std::string, std::vector<int64_t>> shapes;
    for (const auto& [name, t] : named_tensors(*physical)) shapes[name] = t.sizes().vec();
    shapes_.push_back(std::move(shapes));
    macs_.push_back(measure_cost(*physical, in_channels, height_, width_).macs);
  }
  bn_stats_.assign(branch_count(), {});
  bn_params_.assign(branch_count(), {});
  exits_of_.assign(branch_count(), {});
}

void MultiBranchNetwork::add_linear_exit_heads(int64_t classes) {
  // every early-exit branch has a head of its own: one head shared by trunks of different widths
  // has to serve features that have little in common
  for (size_t b = 0; b < branch_count(); ++b) {
    if (!is_early_exit(b)) continue;
    const int64_t in = shapes_[b].at("fc.weight").at(1);
    auto head = register_module("exit_head" + std::to_string(b), torch::nn::Linear(in, classes));
    auto& own = exit_tensors_[b];
    own["fc.weight"] = head->weight;
    own["fc.bias"] = head->bias;
  }
}

void MultiBranchNetwork::add_private_bn() {
  // private BN affine parameters per full-depth branch; an early-exit branch uses those of its
  // full-depth twin (same width and op), whose trunk it is
  for (size_t b = 0; b < branch_count(); ++b) {
    if (is_early_exit(b)) continue;
    for (const auto& [name, shape] : shapes_[b]) {
      if (!ends_with(name, ".running_mean")) continue;
      const std::string bn = name.substr(0, name.size() - std::string(".running_mean").size());
      for (const char* field : {".weight", ".bias"})
        bn_params_[b][bn + field] =
            register_parameter(registered_name("bn" + std::to_string(b) + "_" + bn + field),
                               tensor(b, bn + field).detach().clone());
    }
  }
  for (size_t b = 0; b < branch_count(); ++b) {
    if (!is_early_exit(b)) continue;
    for (size_t t = 0; t < branch_count(); ++t)
      if (!is_early_exit(t) && branch(t).depth.full() && branch(t).op.same_variant(branch(b).op) &&
          branch(t).width == branch(b).width) {
        exits_of_[t].push_back(b);
        for (const auto& [name, shape] : shapes_[b])
          if (auto it = bn_params_[t].find(name);
              it != bn_params_[t].end() && !exit_tensors_[b].count(name))
            bn_params_[b][name] = it->second;
      }
  }
}

void MultiBranchNetwork::pick_extremes() {
  // the sandwich's extremes classify after the last stage (the smallest may be shallow): an early
  // exit trains only through its full-depth branch's passes and is fitted after training
  largest_ = 0;
  for (size_t b = 0; b < branch_count(); ++b)
    if (macs_[b] > macs_[largest_]) largest_ = b;
  smallest_ = largest_;
  for (size_t b = 0; b < branch_count(); ++b)
    if (!is_early_exit(b) && macs_[b] < macs_[smallest_]) smallest_ = b;
  active_ = largest_;
}

torch::Tensor MultiBranchNetwork::source(size_t b, const std::string& name) const {
  // a branch's own BN statistics and affine parameters win over every shared tensor
  if (is_bn_statistic(name)) {
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
  if (auto v = variant_source(b, name); v.defined()) return v;
  auto it = base_tensors_.find(name);
  if (it == base_tensors_.end())
    throw std::logic_error("multi-branch network: no source for " + name);
  return it->second;
}

torch::Tensor MultiBranchNetwork::select(size_t, const std::string&, torch::Tensor t,
                                         const std::vector<int64_t>& shape) const {
  return narrow_to(t, shape);
}

torch::Tensor MultiBranchNetwork::tensor(size_t b, const std::string& name) const {
  return select(b, name, source(b, name), shapes_[b].at(name));
}

torch::Tensor MultiBranchNetwork::batch_norm(size_t b, const std::string& name,
                                             const torch::Tensor& x) {
  auto w = tensor(b, name + ".weight"), bias = tensor(b, name + ".bias");
  if (is_training()) return torch::batch_norm(x, w, bias, {}, {}, true, 0.1, 1e-5, false);
  return torch::batch_norm(x, w, bias, tensor(b, name + ".running_mean"),
                           tensor(b, name + ".running_var"), false, 0.1, 1e-5, false);
}

torch::Tensor MultiBranchNetwork::forward_features(size_t b, const torch::Tensor& input) {
  return trunk(b, input, nullptr);
}

torch::Tensor MultiBranchNetwork::forward_branch(size_t b, const torch::Tensor& input) {
  return torch::linear(forward_features(b, input), tensor(b, "fc.weight"), tensor(b, "fc.bias"));
}

torch::Tensor MultiBranchNetwork::forward(torch::Tensor x) { return forward_branch(active_, x); }

torch::Tensor MultiBranchNetwork::forward_with_exits(size_t b, const torch::Tensor& input,
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

torch::Tensor MultiBranchNetwork::exit_head(size_t e, const torch::Tensor& x) {
  return torch::linear(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1), tensor(e, "fc.weight"),
                       tensor(e, "fc.bias"));
}

BranchModel MultiBranchNetwork::materialize(size_t b) const {
  torch::NoGradGuard no_grad;
  BranchModel out;
  out.spec_json = branch_specs_.at(b);
  for (const auto& [name, shape] : shapes_[b])
    out.state[name] = tensor(b, name).detach().clone().contiguous();
  return out;
}

std::shared_ptr<Backbone> MultiBranchNetwork::physical(size_t b) const {
  const auto m = materialize(b);
  auto model = backbone_from_spec(m.spec_json);
  load_module_state(*model, m.state, "branch " + branch(b).name);
  model->eval();
  return model;
}

void MultiBranchNetwork::set_branch_bn_stats(size_t b, const compress::StateDict& stats) {
  auto& dst = bn_stats_.at(b);
  dst.clear();
  for (const auto& [name, t] : stats) {
    auto it = shapes_[b].find(name);
    if (it == shapes_[b].end() || t.sizes().vec() != it->second)
      throw std::invalid_argument("multi-branch network: BN statistic " + name +
                                  " does not fit branch " + branch(b).name);
    dst[name] = t.detach().clone();
  }
}

void MultiBranchNetwork::reset_private_bn() {
  torch::NoGradGuard no_grad;
  auto own = std::move(bn_params_);
  bn_params_.assign(branch_count(), {});  // lookups fall through to the shared tensors
  for (size_t b = 0; b < own.size(); ++b)
    for (auto& [name, t] : own[b]) t.copy_(tensor(b, name));
  bn_params_ = std::move(own);
}

void MultiBranchNetwork::fit_exit_heads(const torch::Tensor& images, const torch::Tensor& labels,
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

compress::StateDict MultiBranchNetwork::full_state() const {
  auto state = module_state(*this);
  for (size_t b = 0; b < branch_count(); ++b)
    for (const auto& [name, t] : bn_stats_[b])
      state["bnstats." + std::to_string(b) + "." + name] = t.contiguous();
  return state;
}

void MultiBranchNetwork::load_full_state(const compress::StateDict& state,
                                         const std::string& origin) {
  compress::StateDict own;
  std::vector<compress::StateDict> stats(branch_count());
  for (const auto& [name, t] : state) {
    if (name.rfind("bnstats.", 0) != 0) {
      own[name] = t;
      continue;
    }
    const auto dot = name.find('.', 8);
    const std::string index = name.substr(8, dot == std::string::npos ? dot : dot - 8);
    if (dot == std::string::npos || index.empty() || index.size() > 6 ||
        index.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(index) >= branch_count())
      throw CheckpointError(origin + ": BN statistics of a missing branch (" + name + ")");
    stats[std::stoul(index)][name.substr(dot + 1)] = t;
  }
  load_module_state(*this, own, origin);
  for (size_t b = 0; b < branch_count(); ++b) set_branch_bn_stats(b, stats[b]);
}

}  // namespace adascale::trainer
