// StudentDraw: which branches a joint step of the sandwich rule trains besides the largest (the
// smallest, supernet.every_step's, and supernet.sampled of the others, drawn from a generator
// seeded by the step, so a resumed run draws the same ones). With elastic depth and
// supernet.depth_order = progressive, the first half of the joint epochs (rounded down) trains
// full-depth branches only: the smallest is then the narrowest full-depth branch, and shallow
// branches are neither drawn nor trained through every_step. Internal to supernet/.
#pragma once

#include <cstdint>
#include <vector>

#include "supernet/multi_branch_network.h"
#include "trainer/config.h"

namespace adascale::trainer::supernet_detail {

class StudentDraw {
 public:
  // every_step: checked branches (every_step_branches), neither the largest nor the smallest
  StudentDraw(const MultiBranchNetwork& net, const TrainConfig& config,
              std::vector<size_t> every_step);
  // the students of joint step `global` (counted over the joint phase) in joint epoch `epoch`
  std::vector<size_t> students(int64_t epoch, int64_t global) const;
  // whether joint epoch `epoch` leaves the shallow branches out
  bool full_depth_only(int64_t epoch) const { return 2 * (epoch + 1) <= progressive_epochs_; }

 private:
  struct Pool {
    size_t smallest = 0;
    std::vector<size_t> every_step, others;  // others: drawn from
  };
  const MultiBranchNetwork& net_;
  uint64_t seed_ = 0;
  int64_t sampled_ = 0;
  int64_t progressive_epochs_ = 0;  // joint epochs with progressive depth, else 0
  Pool all_, full_depth_;
};

}  // namespace adascale::trainer::supernet_detail
