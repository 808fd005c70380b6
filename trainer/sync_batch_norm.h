// Synchronised BatchNorm for data-parallel training (train.batchnorm = synchronized): while a
// SyncBatchNormScope lives, every training-mode BatchNorm2d of the thread's network
// (compress/batch_norm.h) normalises with the mean and variance of the whole global batch, summed
// over the ranks, and its backward pass sums the two gradient reductions over the ranks too, so
// that with the GradientReducer's weighting the ranks compute exactly what one process computes
// with the whole batch. Costs two blocking allreduces of 2C+1 values per layer and step.
#pragma once

#include <memory>

#include "compress/batch_norm.h"
#include "trainer/rank_group.h"

namespace adascale::trainer {

class SyncBatchNormScope {
 public:
  explicit SyncBatchNormScope(RankGroup& group);
  // this rank's share of the step's global batch (the reducer's weight); before each step
  void set_weight(double weight) { *weight_ = weight; }

 private:
  std::shared_ptr<double> weight_;
  compress::BatchNormHookScope scope_;
};

}  // namespace adascale::trainer
