#include "trainer/sync_batch_norm.h"

namespace adascale::trainer {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

torch::Tensor channels(const torch::Tensor& t) { return t.view({1, -1, 1, 1}); }

// y = (x - mean) / sqrt(var + eps) * weight + bias over the global batch. Gradients: weight and
// bias get this rank's share (the reducer sums them); x gets the part of the global loss's
// gradient that this rank's loss carries, divided by this rank's weight, so that the reducer's
// weighting of everything upstream stays right.
struct SyncBatchNormFunction : torch::autograd::Function<SyncBatchNormFunction> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, torch::Tensor weight,
                               torch::Tensor bias, torch::nn::BatchNorm2dImpl* bn, RankGroup* group,
                               double rank_weight) {
    const int64_t c = x.size(1);
    const double count = static_cast<double>(x.numel() / c);
    auto stats = torch::cat(
        {x.sum({0, 2, 3}), (x * x).sum({0, 2, 3}), torch::full({1}, count, x.options())});
    group->allreduce_sum(stats);
    const double total = stats[2 * c].item<double>();
    const auto mean = stats.slice(0, 0, c) / total;
    const auto var = (stats.slice(0, c, 2 * c) / total - mean * mean).clamp_min(0);
    const auto invstd = torch::rsqrt(var + bn->options.eps());
    {
      torch::NoGradGuard no_grad;
      const double m = bn->options.momentum().value_or(0.1);
      bn->running_mean.mul_(1 - m).add_(mean, m);
      bn->running_var.mul_(1 - m).add_(var * (total / std::max(1.0, total - 1)), m);
      bn->num_batches_tracked.add_(1);
    }
    const auto xhat = (x - channels(mean)) * channels(invstd);
    ctx->save_for_backward({xhat, invstd, weight});
    ctx->saved_data["total"] = total;
    ctx->saved_data["rank_weight"] = rank_weight;
    ctx->saved_data["group"] = reinterpret_cast<int64_t>(group);
    return xhat * channels(weight) + channels(bias);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &xhat = saved[0], &invstd = saved[1], &weight = saved[2];
    const auto dy = grads[0];
    const double total = ctx->saved_data["total"].toDouble();
    const double w = ctx->saved_data["rank_weight"].toDouble();
    auto* group = reinterpret_cast<RankGroup*>(ctx->saved_data["group"].toInt());
    const int64_t c = xhat.size(1);
    const auto sum_dy = dy.sum({0, 2, 3});
    const auto sum_dy_xhat = (dy * xhat).sum({0, 2, 3});
    // the global loss's sums: every rank's weighted by its share
    auto sums = torch::cat({sum_dy, sum_dy_xhat}) * w;
    group->allreduce_sum(sums);
    const auto mean_dy = sums.slice(0, 0, c) / (total * w);
    const auto mean_dy_xhat = sums.slice(0, c, 2 * c) / (total * w);
    const auto dx =
        channels(weight * invstd) * (dy - channels(mean_dy) - xhat * channels(mean_dy_xhat));
    return {dx, sum_dy_xhat, sum_dy, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

SyncBatchNormScope::SyncBatchNormScope(RankGroup& group)
    : weight_(std::make_shared<double>(1.0)),
      scope_(
          [weight = weight_, g = &group](torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) {
            return SyncBatchNormFunction::apply(x, bn.weight, bn.bias, &bn, g, *weight);
          }) {}

}  // namespace adascale::trainer
