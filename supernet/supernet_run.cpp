#include "supernet/supernet_run.h"

#include "supernet/detail.h"

namespace adascale::trainer::supernet_detail {

void recalibrate_branch(MultiBranchNetwork& net, size_t b, const torch::Tensor& cal) {
  auto physical = net.physical(b);
  recalibrate_batchnorm(*physical, cal);
  compress::StateDict stats;
  for (const auto& [name, t] : module_state(*physical))
    if (ends_with(name, ".running_mean") || ends_with(name, ".running_var")) stats[name] = t;
  net.set_branch_bn_stats(b, stats);
}

BranchEval evaluate_branch(MultiBranchNetwork& net, size_t b, data::BatchLoader& loader,
                           int64_t classes, const std::vector<int64_t>& chw) {
  auto physical = net.physical(b);
  BranchEval e;
  e.accuracy = evaluate(*physical, loader, classes).accuracy;
  const auto cost = measure_cost(*physical, chw[0], chw[1], chw[2]);
  e.params = cost.params;
  e.macs = cost.macs;
  return e;
}

torch::Tensor joint_pass(MultiBranchNetwork& net, size_t b, const torch::Tensor& images,
                         std::vector<torch::Tensor>* exits, bool with_exits, bool detach_exits) {
  exits->clear();
  return with_exits ? net.forward_with_exits(b, images, exits, detach_exits)
                    : net.forward_branch(b, images);
}

}  // namespace adascale::trainer::supernet_detail
