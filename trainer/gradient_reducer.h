// GradientReducer: the data-parallel half of a training step. After the backward passes every
// rank holds the same gradients: the sum over ranks of each rank's gradients times its weight
// (its share of the global batch, so the result is the gradient of the mean loss over the whole
// global batch, as one process would compute it).
//
// Gradients travel in buckets of about `bucket_bytes`, parameters in reverse order (the order in
// which backward produces them). With overlap, a hook on each parameter copies its gradient into
// the bucket as soon as backward produces it and starts the bucket's allreduce once the bucket is
// complete, so communication runs while backward goes on (what DDP's reducer does); this needs
// the step to be one backward pass over zeroed gradients (arm() before it). Otherwise, or for
// buckets whose parameters got no gradient from that pass, finish() sends the accumulated
// gradients after the last pass. Parameters without a gradient on every rank keep none.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "trainer/rank_group.h"

namespace adascale::trainer {

class GradientReducer {
 public:
  GradientReducer(std::vector<torch::Tensor> params, RankGroup& group,
                  int64_t bucket_bytes = int64_t{1} << 20, bool overlap = true);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // before a step's single backward pass over zeroed gradients (only with overlap)
  void arm(double weight);
  // after the step's backward passes
  void finish(double weight);

  bool overlaps() const { return overlap_; }
  size_t buckets() const { return buckets_.size(); }
  // seconds finish() spent (sending what was left and waiting): the communication the step
  // did not hide, summed over steps
  double exposed_seconds() const { return exposed_seconds_; }
  int64_t steps() const { return steps_; }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    std::vector<int64_t> offsets;
    torch::Tensor flat;
    int ready = 0;
    bool launched = false;
    std::function<void()> wait;
  };
  void on_gradient(size_t param, const torch::Tensor& grad);
  void launch(Bucket& bucket);

  std::vector<torch::Tensor> params_;
  RankGroup& group_;
  bool overlap_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_, offset_of_;
  std::vector<unsigned> hooks_;
  std::atomic<bool> armed_{false};
  double weight_ = 1.0;
  double exposed_seconds_ = 0.0;
  int64_t steps_ = 0;
};

}  // namespace adascale::trainer
