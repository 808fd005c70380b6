// TrainConfig: everything a training run needs, read from an INI file (Boost.Program_options) with
// command-line overrides. Keys are `section.key` (e.g. `train.epochs`); on the command line they
// are
// `--train.epochs 5`. Unknown keys and ill-typed values are errors that name the key and the file.
//
// The effective config (file + overrides) is rendered back to INI text with to_ini() and stored in
// every checkpoint, so `adascale eval` and `--resume` rebuild exactly the same run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/strings.h"
#include "models/model_config.h"

namespace adascale::trainer {

struct DataConfig {
  std::string format = "fashion-mnist";
  std::string root;  // empty: the format's default location
  double validation_fraction = 0.1;
  int64_t crop_padding = 2;
  bool horizontal_flip = true;
  int workers = 2;
  int64_t limit_train = 0;  // > 0: use only the first N training examples (smoke runs)
  int64_t limit_test = 0;
  int64_t image_size = 0;  // folder format only
  int64_t channels = 0;    // folder format only
};

struct OptimConfig {
  int64_t epochs = 10;
  int64_t batch_size = 128;
  std::string optimizer = "sgd";  // sgd | adamw
  double lr = 0.1;
  double momentum = 0.9;
  bool nesterov = true;
  double weight_decay = 5e-4;
  std::string schedule = "cosine";  // cosine | step | constant
  int64_t step_size = 10;           // step schedule: epochs between decays
  double gamma = 0.1;               // step schedule: decay factor
  double warmup_epochs = 0.0;       // linear warm-up from 0, in (fractional) epochs
  // cosine horizon in epochs, 0: epochs; longer when a later phase continues the schedule (a
  // multi-branch warm-up with joint_schedule = continue records it here)
  int64_t schedule_epochs = 0;
  double label_smoothing = 0.0;
  uint64_t seed = 1;
  int threads = 2;
  // cpu | cuda | cuda:N (a CUDA-enabled LibTorch); with ranks, cuda is cuda:LOCAL_RANK
  std::string device = "cpu";
  // BatchNorm statistics in a data-parallel run: per-rank (each rank's shard, as DDP) or
  // synchronized (the whole global batch, as one process; plain training and the warm-up)
  std::string batchnorm = "per-rank";
};

// The branch space of a multi-branch network (supernet/branch_space.h). Lists are comma-separated
// and checked against the model before any training starts. Empty widths: a plain backbone run.
struct SupernetConfig {
  std::string widths;        // width multipliers, e.g. "1.0,0.75,0.5,0.25"
  std::string ops = "conv";  // operators: conv, dpconv, fire, lowrank:F (supernet/operator.h)
  std::string op_stages;     // stages (from 1) whose 3x3 convs take the variant; "": last two
  std::string exits;         // stages (from 1) with a classifier head; "": the last only
  std::string depths;        // shallower depths, dK/N@S (first K of N blocks); "": full only
  std::string backbone;      // trained backbone checkpoint; "": warm it up for train.epochs
  int64_t joint_epochs = 3;  // sandwich-rule epochs over all branches
  double joint_lr = 0.02;    // peak rate of the joint phase (cosine to 0)
  // restart: the joint phase runs its own cosine from joint_lr; continue: one cosine from
  // train.lr over warm-up + joint epochs, the joint phase picking up where the warm-up stopped
  // (joint_lr unused; needs the warm-up, so no backbone)
  std::string joint_schedule = "restart";
  // with elastic depth: sandwich trains shallow branches from the first joint step (the smallest
  // is the narrowest shallowest); progressive (OFA's order) trains full depth only for the first
  // half of the joint epochs, then every depth
  std::string depth_order = "sandwich";
  int64_t sampled = 2;  // branches sampled per step besides the largest and smallest
  // full-depth branches trained in every step besides the largest and the smallest (names,
  // comma-separated); the sampled ones are drawn from the rest
  std::string every_step;
  // share of each batch a student (every branch but the largest) trains on; students take
  // different slices, so more branches fit in a step for the same training images
  double student_batch = 1.0;
  // students run concurrently, this many at a time on one intra-op thread each; 0: train.threads.
  // Their gradients are summed in a fixed order, so a run repeats exactly at any setting. Pays
  // where OpenMP threads sleep between parallel regions (OMP_WAIT_POLICY=PASSIVE, a shared
  // machine); with OpenMP's default waiting one student at a time on all threads was faster
  // (docs/notebook/results.md)
  int student_threads = 1;
  double distill_weight = 1.0;  // smaller branches: (1-w) x label loss + w x distillation
  // each student's loss is scaled by this against the largest branch's: the students' gradients
  // on the shared weights are what keeps the largest branch under the backbone trained alone, so
  // less than 1 brings the largest closer to it and leaves the students less to learn from (their
  // exits' blocks are not scaled; docs/notebook/results.md)
  double student_weight = 1.0;
  // exit losses in the trunk: every forward pass of a full-depth branch in the joint phase also
  // classifies at its early exits (same trunk, no extra images) and adds exit_weight x each exit's
  // loss, which flows into the shared trunk; 0: no exit loss reaches the trunk. Either way the
  // exits' classifiers are refitted after it on the calibration images.
  double exit_weight = 0.0;
  // what an early exit classifies with: linear (global pool + linear, fitted after joint
  // training) or block (a residual block at the exit's channel count, half of it inside, with the
  // next stage's stride and the branch's operator, then pool + linear; the exits of one operator
  // share the block's weights by width, BN and classifier private; started from the next stage's
  // leading channels and trained in the joint phase on the trunk's detached features of the same
  // passes when exit_weight = 0)
  std::string exit_head = "linear";
  int64_t calibration_images = 2048;  // BN recalibration and variant initialisation
  int64_t distill_steps = 200;        // layer-wise distillation steps per substituted conv
  // int8 branches (precision "int8"): derived from their fp32 twin by calibration, and either
  // quantizing its shared weights at preparation (int8_weights = shared: no weight bytes of
  // their own; a twin losing more than int8_shared_max_loss points on the calibration images
  // is fine-tuned instead) or quantization-aware fine-tuning of a copy of the twin's folded
  // weights (finetuned) (export/int8_quantizer.h)
  std::string precisions = "fp32";      // fp32 | int8 | fp32,int8
  std::string int8_weights = "shared";  // shared | finetuned
  double int8_shared_max_loss = 0.3;
  int64_t qat_images = 2048;  // training images for calibration and QAT
  int64_t qat_steps = 200;    // 0: post-training quantization only
  double qat_lr = 0.001;
  double qat_percentile = 99.99;  // activation range: this central share of the values
  bool enabled() const { return !widths.empty(); }
};

struct TrainConfig {
  std::string name = "run";
  DataConfig data;
  ModelConfig model;
  OptimConfig train;
  SupernetConfig supernet;
  std::string out_dir = "runs/run";
  std::string source;  // where the config came from (file path or "checkpoint")

  std::string to_ini() const;
  void validate() const;  // throws ConfigError naming the key
};

// parses INI text; origin names the file in error messages
TrainConfig parse_config_text(const std::string& ini_text, const std::string& origin);
TrainConfig load_config_file(const std::string& path);
// applies `--section.key value` pairs (and the shortcuts --threads, --epochs, --seed, --out) on top
void apply_overrides(TrainConfig& config, const std::vector<std::string>& args);

using base::join_int_list;
using base::parse_int_list;

}  // namespace adascale::trainer
