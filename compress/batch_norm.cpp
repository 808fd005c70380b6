#include "compress/batch_norm.h"

namespace adascale::compress {

namespace {
thread_local BatchNormHook t_hook;
}

torch::Tensor batch_norm(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) {
  if (t_hook && bn.is_training()) return t_hook(bn, x);
  return bn.forward(x);
}

BatchNormHookScope::BatchNormHookScope(BatchNormHook hook) : previous_(std::move(t_hook)) {
  t_hook = std::move(hook);
}

BatchNormHookScope::~BatchNormHookScope() { t_hook = std::move(previous_); }

}  // namespace adascale::compress
