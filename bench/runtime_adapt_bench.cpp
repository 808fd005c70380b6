// Costs of the adaptation loop itself: it must stay negligible next to inference.
// Targets: a selection decision over 64 branches <= 20 us, one cheap monitor sample <= 200 us,
// the loop's own CPU share at 10 Hz well under 1%.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <chrono>
#include <thread>
#include <vector>

#include "runtime/adapt/adaptation_loop.h"

namespace adascale {
namespace {

std::vector<BranchCosts> synthetic_branches(size_t count) {
  std::vector<BranchCosts> branches(count);
  for (size_t i = 0; i < count; ++i) {
    BranchCosts& b = branches[i];
    b.name = "branch-" + std::to_string(i);
    b.latency_median_ms = 0.1 + 0.05 * static_cast<double>((i * 37) % count);
    b.latency_p90_ms = *b.latency_median_ms * 1.2;
    b.accuracy = 0.5 + 0.4 * static_cast<double>((i * 11) % count) / count;
    b.memory_bytes = 1e5 * static_cast<double>(1 + (i * 13) % count);
    b.macs = 1e6 * static_cast<double>(1 + i);
    b.memory_access_bytes = 1e5 * static_cast<double>(1 + i);
  }
  return branches;
}

ContextSample busy_context() {
  ContextSample s;
  s.cpu_count = 2;
  s.others_cpu_utilization = 0.6;
  s.frequency_ratio = 0.9;
  s.cache_rate = 0.4;
  s.mem_available_bytes = uint64_t{4} << 30;
  return s;
}

void BM_SelectorDecide64(benchmark::State& state) {
  Profiler profiler(synthetic_branches(64));
  const std::vector<BranchEstimate> estimates = profiler.predict(busy_context());
  Selector selector(SelectorOptions{0.005, 0.05, 0});
  Budgets budgets;
  budgets.latency_ms = 1.5;
  budgets.memory_mode = MemoryBudgetMode::kAvailableMinusMargin;
  budgets.memory_bytes = (uint64_t{4} << 30) - 3e6;
  budgets.energy_mj = 50;
  budgets.energy_weight = 0.001;
  selector.set_budgets(budgets);
  const SelectionContext context = selection_context(busy_context());
  double now = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(selector.decide(estimates, context, now));
    now += 100;
  }
}
BENCHMARK(BM_SelectorDecide64);

// Profiler prediction for 64 branches (runs once per loop step next to the decision).
void BM_ProfilerPredict64(benchmark::State& state) {
  Profiler profiler(synthetic_branches(64));
  const ContextSample sample = busy_context();
  for (auto _ : state) benchmark::DoNotOptimize(profiler.predict(sample).data());
}
BENCHMARK(BM_ProfilerPredict64);

// One sample of every cheap signal this machine has (procfs/sysfs reads), probe off.
void BM_MonitorSampleCheap(benchmark::State& state) {
  ContextMonitorOptions options;
  options.probe_period_ms = 0;
  ContextMonitor monitor(options);
  monitor.sample();
  for (auto _ : state) benchmark::DoNotOptimize(monitor.sample());
}
BENCHMARK(BM_MonitorSampleCheap)->Unit(benchmark::kMicrosecond);

// The cache-rate and bandwidth probe at its default sizes (runs once per probe period).
void BM_MonitorProbe(benchmark::State& state) {
  ContextMonitor monitor;
  monitor.run_probe(0);
  for (auto _ : state) monitor.run_probe(0);
}
BENCHMARK(BM_MonitorProbe)->Unit(benchmark::kMicrosecond);

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// The loop at 10 Hz with 64 branches and the default 1 s probe, over a few seconds; the main
// thread sleeps, so the process's CPU time is the loop's.
void BM_LoopCpuShare10Hz(benchmark::State& state) {
  const double seconds = static_cast<double>(state.range(0));
  double share = 0;
  for (auto _ : state) {
    AdaptationOptions options;
    options.monitor.period_ms = 100;
    AdaptationLoop loop(synthetic_branches(64), options);
    Budgets budgets;
    budgets.latency_ms = 1.5;
    loop.set_budgets(budgets);
    const double cpu_start = cpu_seconds();
    const auto wall_start = std::chrono::steady_clock::now();
    loop.start();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    loop.stop();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    share = (cpu_seconds() - cpu_start) / wall;
    state.counters["iterations"] = static_cast<double>(loop.stats().iterations);
  }
  state.counters["cpu_share_pct"] = 100 * share;
}
BENCHMARK(BM_LoopCpuShare10Hz)->Arg(4)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace adascale

BENCHMARK_MAIN();
