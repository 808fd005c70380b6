// What a training run does differently when it is one rank of several (trainer/rank_group.h):
// agreeing on config and data before the first step, the rank's shard of every batch and of the
// validation split, statistics summed over ranks, one module state on every rank. Every helper is
// a no-op (or the single-process answer) without a group, so the training code has one path.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>

#include "trainer/epoch_loop.h"
#include "trainer/gradient_reducer.h"
#include "trainer/rank_group.h"
#include "trainer/training.h"

namespace adascale::trainer {

// every rank refuses to start unless all ranks hold the same config (keys that change speed but
// not results and the paths of data and output may differ) and the same training and test data
void require_same_run(const TrainConfig& config, const RunData& rd);

// the loader options of this rank's shard of the training batches (options unchanged without a
// group)
data::LoaderOptions shard_of(data::LoaderOptions options);
// this rank's contiguous part of `indices` (all of them without a group)
std::vector<int64_t> shard_of(const std::vector<int64_t>& indices);

// the reducer of a run's parameters, nullptr without a group of more than one rank. Overlap and
// bucket size: ADASCALE_ALLREDUCE=overlap|after-backward (default overlap), ADASCALE_BUCKET_KB
// (default 256)
std::unique_ptr<GradientReducer> make_reducer(const std::vector<torch::Tensor>& params,
                                              bool single_backward);

// an epoch's statistics summed over ranks (loss and accuracy over every rank's images)
EpochResult reduce_epoch(const EpochResult& local);
// an evaluation of this rank's shard, summed over ranks
EvalResult reduce_eval(const EvalResult& local);
// sums of per-rank counts, in place
void reduce_counts(std::vector<double>& values);

// rank 0's parameters and buffers on every rank
void broadcast_module(torch::nn::Module& module);
// a checksum of a module's parameters (of a state's tensors), the same on every rank or a
// DistributedError naming `what`; buffers may differ (BatchNorm's running statistics are per
// rank until broadcast_module)
void require_same_parameters(const std::string& what, const torch::nn::Module& module);
void require_same_state(const std::string& what, const std::map<std::string, torch::Tensor>& state);

// the line the run prints at its start when it has ranks: "data-parallel: 2 ranks x 1 thread,
// ..." ("" without a group)
std::string describe_ranks(const TrainConfig& config, const GradientReducer* reducer,
                           bool synchronised_batchnorm);

}  // namespace adascale::trainer
