// Training-step throughput of the backbones (forward + backward + SGD step), images/s.
// scripts/bench_train_throughput.sh runs this side by side with the same network in Python.
// Each network runs twice: with the trainer's memory order around convolutions (order:tuned)
// and with every tensor left NCHW (order:nchw, LibTorch's default), for their ratio.
// With a config that has a [supernet] section, BM_BranchPass also times one student pass of each
// full-depth branch (forward + backward) three ways: through the shared weights (mode 0), as its
// physical network (mode 1), and through the shared weights with its exit blocks (mode 2).
//   train_step_bench --config configs/fmnist_resnet.ini --threads 2 [--width 0.25]
//                    [benchmark flags]
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>

#include "compress/mac_counter.h"
#include "trainer/config.h"
#include "models/backbone.h"
#include "supernet/supernet.h"
#include "supernet/supernet_training.h"
#include "trainer/training.h"

using namespace adascale::trainer;

namespace {
TrainConfig g_config;

void BM_TrainStep(benchmark::State& state) {
  const auto& c = g_config;
  const bool nchw = state.range(0) == 1;
  adascale::compress::set_conv_memory_order(nchw ? adascale::compress::ConvMemoryOrder::kNchw
                                                 : adascale::compress::ConvMemoryOrder::kTuned);
  torch::set_num_threads(c.train.threads);
  torch::manual_seed(c.train.seed);
  auto model = make_backbone(c.model, 1, 10);
  model->train();
  auto optimizer = make_optimizer(c.train, model->parameters());
  const int64_t b = c.train.batch_size;
  auto x = torch::randn({b, 1, 28, 28});
  auto y = torch::randint(0, 10, {b});
  for (int i = 0; i < 3; ++i) {  // warm-up: allocator and oneDNN primitive caches
    optimizer->zero_grad();
    torch::nn::functional::cross_entropy(model->forward(x), y).backward();
    optimizer->step();
  }
  for (auto _ : state) {
    optimizer->zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    optimizer->step();
    benchmark::DoNotOptimize(loss.item<float>());
  }
  state.SetItemsProcessed(state.iterations() * b);
  state.SetLabel(model->describe() + " threads " + std::to_string(c.train.threads) +
                 (nchw ? " nchw" : " tuned"));
  adascale::compress::set_conv_memory_order(adascale::compress::ConvMemoryOrder::kTuned);
}
BENCHMARK(BM_TrainStep)
    ->ArgName("nchw")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(5.0)
    ->UseRealTime();
// one student pass of the multi-branch network (forward, with or without its exit blocks, and
// backward) against the same branch as a plain physical ResNet: what weight sharing costs a pass
std::shared_ptr<Supernet> g_supernet;

void BM_BranchPass(benchmark::State& state) {
  const auto b = static_cast<size_t>(state.range(0));
  const int64_t mode = state.range(1);  // 0 shared, 1 physical, 2 shared with exit blocks
  const bool physical = mode == 1;
  torch::set_num_threads(g_config.train.threads);
  auto& net = *g_supernet;
  net.train();
  const int64_t n = g_config.train.batch_size;
  auto x = torch::randn({n, 1, 28, 28});
  auto y = torch::randint(0, 10, {n});
  std::shared_ptr<Backbone> plain;
  if (physical) {
    plain = net.physical(b);
    plain->train();
  }
  auto pass = [&] {
    torch::Tensor loss;
    if (physical) {
      loss = torch::nn::functional::cross_entropy(plain->forward(x), y);
    } else {
      std::vector<torch::Tensor> exits;
      loss = mode == 2 ? torch::nn::functional::cross_entropy(
                             net.forward_with_exits(b, x, &exits, true), y)
                       : torch::nn::functional::cross_entropy(net.forward_branch(b, x), y);
      for (const auto& e : exits) loss = loss + torch::nn::functional::cross_entropy(e, y);
    }
    loss.backward();
    return loss;
  };
  for (int i = 0; i < 3; ++i) pass();
  for (auto _ : state) benchmark::DoNotOptimize(pass().item<float>());
  state.SetItemsProcessed(state.iterations() * n);
  state.SetLabel(net.branch(b).name + (physical    ? " physical"
                                       : mode == 2 ? " shared+exits"
                                                   : " shared"));
}
}  // namespace

int main(int argc, char** argv) {
  std::string config = std::string(ADASCALE_SOURCE_DIR) + "/configs/fmnist_resnet.ini";
  int threads = 0;
  double width = 1.0;  // scales the stem and every stage (the narrow branches' shapes)
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--config") && i + 1 < argc)
      config = argv[++i];
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--width") && i + 1 < argc)
      width = std::atof(argv[++i]);
    else
      rest.push_back(argv[i]);
  }
  try {
    g_config = load_config_file(config);
  } catch (const std::exception& e) {
    std::cerr << "train_step_bench: " << e.what() << "\n";
    return 2;
  }
  if (threads > 0) g_config.train.threads = threads;
  if (!(width > 0.0 && width <= 1.0)) {
    std::cerr << "train_step_bench: --width must be in (0, 1]\n";
    return 2;
  }
  auto scaled = [&](int64_t c) { return std::max<int64_t>(1, std::llround(c * width)); };
  g_config.model.stem_width = scaled(g_config.model.stem_width);
  for (auto& w : g_config.model.widths) w = scaled(w);
  if (g_config.supernet.enabled()) {
    const ResNetSpec base = ResNetSpec::from_config(g_config.model, 1, 10);
    g_supernet =
        std::make_shared<Supernet>(base, BranchSpace::from_config(g_config.supernet, base), 28, 28);
    auto* bench = benchmark::RegisterBenchmark("BM_BranchPass", BM_BranchPass);
    bench->ArgNames({"branch", "mode"})->Unit(benchmark::kMillisecond)->MinTime(2.0);
    for (size_t b = 0; b < g_supernet->branch_count(); ++b)
      if (!g_supernet->is_early_exit(b))
        for (int64_t mode : {0, 1, 2}) bench->Args({static_cast<int64_t>(b), mode});
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
