// Training and evaluation of a backbone on a dataset, driven by a TrainConfig.
//
// train() is deterministic for a given seed and thread count: the model is initialised from the
// seed, batches come from a seeded BatchLoader, and the learning rate is a pure function of the
// step. A checkpoint is written atomically after every epoch, so `resume` continues from the last
// completed epoch and reaches the same weights as an uninterrupted run.
#pragma once

#include <torch/torch.h>

#include <ostream>
#include <string>
#include <vector>

#include "datasets/batch_loader.h"
#include "datasets/dataset.h"
#include "models/backbone.h"
#include "trainer/checkpoint.h"
#include "trainer/config.h"

namespace adascale::trainer {

struct EvalResult {
  double loss = 0.0;
  double accuracy = 0.0;
  int64_t examples = 0;
  torch::Tensor confusion;  // int64 [classes x classes]: rows true class, columns prediction
};

EvalResult evaluate(Backbone& model, data::BatchLoader& loader, int64_t num_classes);
// aligned text table of the confusion matrix plus per-class accuracy
std::string format_confusion(const EvalResult& result, const std::vector<std::string>& class_names);

struct RunData {
  data::DatasetPtr train;  // the full training file (validation is carved out of it)
  data::DatasetPtr test;
  data::SplitIndices split;
  data::ChannelStats stats;
};
RunData load_run_data(const TrainConfig& config);
data::DatasetSpec dataset_spec(const DataConfig& data, const std::string& split);
// a seeded sample of `count` training-split images, normalized, no augmentation (calibration of
// BN statistics, quantization ranges and distillation)
torch::Tensor calibration_images(const RunData& rd, int64_t count, uint64_t seed,
                                 const data::ChannelStats& normalize);
// the same sample with its labels (quantization-aware fine-tuning)
std::pair<torch::Tensor, torch::Tensor> calibration_sample(const RunData& rd, int64_t count,
                                                           uint64_t seed,
                                                           const data::ChannelStats& normalize);

// learning rate at a global step (warm-up, then cosine / step / constant)
double learning_rate(const OptimConfig& optim, int64_t step, int64_t steps_per_epoch);

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimConfig& optim,
                                                        std::vector<torch::Tensor> params);

struct TrainOutcome {
  std::string checkpoint_path;
  EvalResult test;
  int64_t epochs_run = 0;
  double train_seconds = 0.0;
  double images_per_second = 0.0;  // training images per second of training-step time
};

// trains, validates each epoch, evaluates on the test split; log gets the per-epoch lines.
// stop_after > 0 ends this invocation once that many epochs are complete (the schedule still
// spans train.epochs), so a long run can be split across jobs and continued with resume.
// spec_json: a ResNetSpec to train from scratch instead of the config's model (independent
// twins of compressed branches)
TrainOutcome train(const TrainConfig& config, bool resume, std::ostream& log,
                   int64_t stop_after = 0, const std::string& spec_json = "");

// loader options: training (shuffled, augmented as configured) and evaluation (in order)
data::LoaderOptions train_options(const TrainConfig& config, const data::ChannelStats& stats,
                                  size_t train_size);
data::LoaderOptions eval_options(const DataConfig& data, const data::ChannelStats& stats);

// checks that out_dir can be created and written to; throws ConfigError naming it otherwise
void ensure_writable_dir(const std::string& dir);

// recomputes every BatchNorm's running statistics as the exact average over `images` (normalized
// NCHW), needed after any change that shifts activations (pruning, substitution, quantization)
void recalibrate_batchnorm(Backbone& model, const torch::Tensor& images, int64_t batch_size = 256);

// the test split of a checkpoint's dataset (data.limit_test applied), in order, normalized as the
// checkpoint was trained: what eval, compress and export measure accuracy on
struct HeldOutData {
  data::DatasetPtr set;
  data::LoaderOptions options;
};
HeldOutData held_out_data(const TrainConfig& config, const Checkpoint& ckpt);

// rebuilds the backbone of a single-network checkpoint (plain or compressed), weights loaded, in
// eval mode; multi-branch checkpoints: supernet/model_loading.h
std::shared_ptr<Backbone> load_backbone(const Checkpoint& ckpt, const std::string& origin);

constexpr const char* kCheckpointName = "checkpoint.h5";

// throws ConfigError naming the first differing key when `prev` (read from `path`) was written by
// another config; keys that change speed but not results (threads, workers) may differ
void check_resumable(const Checkpoint& prev, const TrainConfig& config, const std::string& path);
// the config as resume (and the ranks of a run) compare it: keys that change speed but not results
// blanked, paths as the file system resolves them
std::string comparable_config(TrainConfig config);

}  // namespace adascale::trainer
