// EpochLoop: the one epoch loop of every training run, the plain one (train()) and the joint
// phase of a multi-branch network. It owns what both need the same way: the loader's epoch
// numbering, the progress line, the divergence check and the per-epoch statistics; the caller
// supplies the step and what happens after an epoch (validation, the log line, the checkpoint).
// Resuming is starting at a later epoch: batches and learning rates are pure functions of the
// seed, the epoch and the step, so the epochs after a resume are those of an uninterrupted run.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "datasets/batch_loader.h"

namespace adascale::trainer {

struct StepPosition {
  int64_t epoch = 0;            // 0-based, of the loop
  int64_t epochs = 0;           // the loop's span
  int64_t step = 0;             // 0-based, in the epoch
  int64_t steps_per_epoch = 0;  // batches per epoch
  int64_t global() const { return epoch * steps_per_epoch + step; }
  // throws a one-line error when a loss is not finite, before the step spreads it into the
  // weights; the message says which checkpoint survives
  void check_finite(double loss, double lr) const;
};

struct StepResult {
  double loss = 0.0;    // mean loss of the tracked network over the batch
  int64_t correct = 0;  // its correct answers
  int64_t images = 0;   // rows of the batch
};

struct EpochResult {
  int64_t epoch = 0;  // 0-based
  double loss = 0.0, accuracy = 0.0;
  int64_t images = 0;
  double step_seconds = 0.0;   // time inside steps
  double epoch_seconds = 0.0;  // the whole epoch
};

struct EpochLoop {
  std::string label;                // the progress line's name: "epoch", "joint"
  int64_t epochs = 0;               // the loop's span (the schedule's)
  int64_t loader_epoch_offset = 0;  // loader epoch = offset + epoch, so phases see other batches
  std::function<void()> before_epoch;
  std::function<StepResult(const data::Batch&, const StepPosition&)> step;
  std::function<void(const EpochResult&)> after_epoch;
  // runs epochs [begin, end)
  void run(data::BatchLoader& loader, int64_t begin, int64_t end) const;
};

}  // namespace adascale::trainer
