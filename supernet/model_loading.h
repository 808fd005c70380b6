// load_model: the network of any checkpoint, rebuilt from its spec with its weights loaded, in
// eval mode: a multi-branch network (either family) or a single backbone (plain or compressed).
#pragma once

#include <memory>
#include <string>

#include "models/backbone.h"
#include "trainer/checkpoint.h"

namespace adascale::trainer {

std::shared_ptr<Backbone> load_model(const Checkpoint& ckpt, const std::string& origin);

class MultiBranchNetwork;
// the multi-branch network of a checkpoint whose spec is one (is_multi_branch_spec)
std::shared_ptr<MultiBranchNetwork> load_supernet(const Checkpoint& ckpt,
                                                  const std::string& origin);

}  // namespace adascale::trainer
