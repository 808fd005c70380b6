// The training of a multi-branch network ([supernet] configs), as phases:
//   1 backbone warm-up (an ordinary training run of the full network, or a given backbone)
//   2 variant initialisation (importance order, SVD factors, distilled substitutions)
//   3 joint training by the sandwich rule with in-place distillation (the trainer's epoch loop)
//   4 BN recalibration per branch and the early-exit classifiers fitted
//   5 test evaluation of every branch, physically materialized
// Phases 1 and 3 write a checkpoint after every epoch (out/backbone/ and out/joint/), so a run
// stopped at any point (--stop-after, a kill) continues with resume and ends with the same
// weights as an uninterrupted run (same seed and threads).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <ostream>
#include <vector>

#include "supernet/multi_branch_network.h"
#include "trainer/training.h"

namespace adascale::trainer {

// The students' half of a joint step: each student's forward pass on its rows of `images` and the
// gradient of `loss` (given its logits, its exits' logits when exits train with it, and its rows),
// added to the parameters' gradients in the students' order, so the sum is the same whichever
// thread ran a student. With threads > 1 the students run concurrently, `threads` at a time, each
// on one intra-op thread; that paid only where OpenMP threads sleep between parallel regions
// (OMP_WAIT_POLICY=PASSIVE).
struct StudentPass {
  size_t branch = 0;
  int64_t start = 0, rows = 0;
};
using StudentLoss = std::function<torch::Tensor(const torch::Tensor& logits,
                                                const std::vector<torch::Tensor>& exit_logits,
                                                int64_t start, int64_t rows)>;
void student_backward(MultiBranchNetwork& net, const torch::Tensor& images,
                      const std::vector<StudentPass>& students, const StudentLoss& loss,
                      bool with_exits, bool detach_exits, int threads);

// The phases of `adascale train` for a config with a [supernet] section: backbone warm-up (or the
// given backbone), variant initialisation (importance order, SVD, distillation), joint training by
// the sandwich rule with in-place distillation, BN recalibration per branch, test evaluation.
// Writes out/checkpoint.h5 and out/summary.json (per-branch results and the cost of each phase).
// resume: continue from the last checkpoint of out/joint/ (or of the warm-up in out/backbone/);
// stop_after > 0 ends this invocation after that many epochs of the run (warm-up epochs first,
// then joint epochs), the checkpoint of the last one written
TrainOutcome train_supernet(const TrainConfig& config, std::ostream& log, bool resume = false,
                            int64_t stop_after = 0);

// Trains every branch of the config's space as its own model from scratch for the same number of
// epochs the supernet's weights saw (train.epochs + supernet.joint_epochs), same data and
// augmentation; writes out/independent/<branch>/checkpoint.h5 and out/independent/summary.json.
void train_independent(const TrainConfig& config, std::ostream& log);

}  // namespace adascale::trainer
