// batch_norm(): the one call through which every BatchNorm2d of the ResNet family runs. It is
// bn.forward(x), unless the calling thread has a BatchNormHook installed (what a data-parallel
// run with synchronised BatchNorm does: trainer/sync_batch_norm.h) and the module is training.
#pragma once

#include <torch/torch.h>

#include <functional>

namespace adascale::compress {

using BatchNormHook =
    std::function<torch::Tensor(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x)>;

torch::Tensor batch_norm(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x);

// installs `hook` for the calling thread while the scope lives
class BatchNormHookScope {
 public:
  explicit BatchNormHookScope(BatchNormHook hook);
  ~BatchNormHookScope();
  BatchNormHookScope(const BatchNormHookScope&) = delete;
  BatchNormHookScope& operator=(const BatchNormHookScope&) = delete;

 private:
  BatchNormHook previous_;
};

}  // namespace adascale::compress
