// Training-step throughput of the backbones (forward + backward + SGD step), images/s.
// scripts/bench_train_throughput.sh runs this side by side with the same network in Python.
// Each network runs twice: with the trainer's memory order around convolutions (order:tuned)
// and with every tensor left NCHW (order:nchw, LibTorch's default), for their ratio.
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
#include "trainer/models.h"
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
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
