#include "supernet/student_draw.h"

#include <algorithm>
#include <random>

namespace adascale::trainer::supernet_detail {

StudentDraw::StudentDraw(const MultiBranchNetwork& net, const TrainConfig& config,
                         std::vector<size_t> every_step)
    : net_(net),
      seed_(config.train.seed),
      sampled_(config.supernet.sampled),
      progressive_epochs_(config.supernet.depth_order == "progressive" &&
                                  net.space().depths.size() > 1
                              ? config.supernet.joint_epochs
                              : 0) {
  auto named = [&](size_t b) {
    return std::find(every_step.begin(), every_step.end(), b) != every_step.end();
  };
  all_.smallest = net.smallest();
  all_.every_step = every_step;
  full_depth_.smallest = net.largest();
  for (size_t b = 0; b < net.branch_count(); ++b)
    if (!net.is_early_exit(b) && net.branch(b).depth.full() &&
        net.branch_macs(b) < net.branch_macs(full_depth_.smallest))
      full_depth_.smallest = b;
  for (size_t b : every_step)
    if (net.branch(b).depth.full() && b != full_depth_.smallest)
      full_depth_.every_step.push_back(b);
  for (size_t b = 0; b < net.branch_count(); ++b) {
    if (b == net.largest() || net.is_early_exit(b) || named(b)) continue;
    if (b != net.smallest()) all_.others.push_back(b);
    if (b != full_depth_.smallest && net.branch(b).depth.full()) full_depth_.others.push_back(b);
  }
}

std::vector<size_t> StudentDraw::students(int64_t epoch, int64_t global) const {
  const Pool& p = full_depth_only(epoch) ? full_depth_ : all_;
  std::vector<size_t> out;
  if (p.smallest != net_.largest()) out.push_back(p.smallest);
  out.insert(out.end(), p.every_step.begin(), p.every_step.end());
  std::mt19937_64 rng(seed_ * 1000003ULL + static_cast<uint64_t>(global));
  auto pool = p.others;
  std::shuffle(pool.begin(), pool.end(), rng);
  for (int64_t i = 0; i < sampled_ && i < static_cast<int64_t>(pool.size()); ++i)
    out.push_back(pool[i]);
  return out;
}

}  // namespace adascale::trainer::supernet_detail
