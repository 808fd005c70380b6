#include "compress/distillation.h"

#include "compress/conv_variants.h"

namespace adascale::compress {

double distill_slot(torch::nn::Module& student, const torch::Tensor& inputs,
                    const torch::Tensor& targets, const DistillOptions& o) {
  const int64_t n = inputs.size(0);
  auto gen = at::detail::createCPUGenerator(o.seed);
  torch::optim::Adam opt(student.parameters(), torch::optim::AdamOptions(o.lr));
  student.train();
  for (int64_t step = 0; step < o.steps; ++step) {
    auto idx = torch::randint(n, {std::min(o.batch_size, n)}, gen, torch::kInt64);
    auto y = forward_conv_slot(student, inputs.index_select(0, idx));
    auto loss = torch::mse_loss(y, targets.index_select(0, idx));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  student.eval();
  torch::NoGradGuard no_grad;
  double err = 0.0, norm = 0.0;
  for (int64_t b = 0; b < n; b += 256) {
    const int64_t e = std::min(n, b + 256);
    auto y = forward_conv_slot(student, inputs.slice(0, b, e));
    auto t = targets.slice(0, b, e);
    err += (y - t).pow(2).sum().item<double>();
    norm += t.pow(2).sum().item<double>();
  }
  return norm > 0 ? err / norm : 0.0;
}

}  // namespace adascale::compress
