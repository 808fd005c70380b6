#include "trainer/gradient_reducer.h"

#include <chrono>

namespace adascale::trainer {

GradientReducer::GradientReducer(std::vector<torch::Tensor> params, RankGroup& group,
                                 int64_t bucket_bytes, bool overlap)
    : params_(std::move(params)), group_(group), overlap_(overlap) {
  bucket_of_.assign(params_.size(), 0);
  offset_of_.assign(params_.size(), 0);
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    if (p.scalar_type() != torch::kFloat32)
      throw DistributedError("gradient reducer: parameter " + std::to_string(k) +
                             " is not float32");
    if (buckets_.empty() || bytes >= bucket_bytes) {
      buckets_.emplace_back();
      bytes = 0;
    }
    auto& b = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    offset_of_[k] = static_cast<size_t>(bytes / 4);
    b.params.push_back(k);
    b.offsets.push_back(bytes / 4);
    bytes += p.numel() * 4;
  }
  for (auto& b : buckets_) {
    int64_t n = 0;
    for (size_t k : b.params) n += params_[k].numel();
    b.flat = torch::zeros({n}, params_[b.params.front()].options());
  }
  if (overlap_)
    for (size_t k = 0; k < params_.size(); ++k)
      if (params_[k].requires_grad())
        hooks_.push_back(
            params_[k].register_hook([this, k](const torch::Tensor& g) { on_gradient(k, g); }));
}

GradientReducer::~GradientReducer() {
  size_t h = 0;
  if (overlap_)
    for (size_t k = 0; k < params_.size(); ++k)
      if (params_[k].requires_grad()) params_[k].remove_hook(hooks_[h++]);
}

void GradientReducer::arm(double weight) {
  if (!overlap_) return;
  weight_ = weight;
  armed_ = true;
}

void GradientReducer::on_gradient(size_t k, const torch::Tensor& grad) {
  if (!armed_) return;
  auto& b = buckets_[bucket_of_[k]];
  if (b.launched) return;
  torch::NoGradGuard no_grad;
  b.flat
      .slice(0, static_cast<int64_t>(offset_of_[k]),
             static_cast<int64_t>(offset_of_[k]) + grad.numel())
      .copy_(grad.reshape(-1))
      .mul_(weight_);
  if (++b.ready == static_cast<int>(b.params.size())) launch(b);
}

void GradientReducer::launch(Bucket& b) {
  b.launched = true;
  b.wait = group_.allreduce_sum_async(b.flat);
}

void GradientReducer::finish(double weight) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  armed_ = false;
  // the buckets backward did not complete: what the gradients hold now
  for (auto& b : buckets_) {
    if (b.launched) continue;
    for (size_t i = 0; i < b.params.size(); ++i) {
      const auto& p = params_[b.params[i]];
      auto slot = b.flat.slice(0, b.offsets[i], b.offsets[i] + p.numel());
      if (p.grad().defined())
        slot.copy_(p.grad().reshape(-1)).mul_(weight);
      else
        slot.zero_();
    }
    launch(b);
  }
  for (auto& b : buckets_) {
    b.wait();
    for (size_t i = 0; i < b.params.size(); ++i) {
      auto& p = params_[b.params[i]];
      if (!p.grad().defined()) continue;
      p.mutable_grad().copy_(b.flat.slice(0, b.offsets[i], b.offsets[i] + p.numel()).view_as(p));
    }
    b.ready = 0;
    b.launched = false;
    b.wait = nullptr;
  }
  ++steps_;
  exposed_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace adascale::trainer
