#include "supernet/model_loading.h"

#include "supernet/multi_branch_network.h"
#include "trainer/training.h"

namespace adascale::trainer {

std::shared_ptr<Backbone> load_model(const Checkpoint& ckpt, const std::string& origin) {
  if (!is_multi_branch_spec(ckpt.spec)) return load_backbone(ckpt, origin);
  return load_supernet(ckpt, origin);
}

std::shared_ptr<MultiBranchNetwork> load_supernet(const Checkpoint& ckpt, const std::string& origin) {
  if (ckpt.input_shape.size() != 3) throw CheckpointError(origin + ": bad input_shape");
  auto net = multi_branch_from_spec(ckpt.spec);
  net->load_full_state(ckpt.tensors, origin);
  net->eval();
  return net;
}

}  // namespace adascale::trainer
