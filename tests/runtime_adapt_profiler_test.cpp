// Profiler: catalog costs (runtime/branch_costs.h), context scaling, energy model, online
// correction, error stats.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "runtime/adapt/profiler.h"

namespace adascale {
namespace {

BranchCosts costs_of(const std::string& json, const std::string& name = "b") {
  BranchCosts costs;
  EXPECT_TRUE(parse_branch_costs(name, json, &costs).ok()) << json;
  return costs;
}

// An idle two-core machine at full clock.
ContextSample idle_context() {
  ContextSample s;
  s.cpu_count = 2;
  s.cpu_utilization = 0.0;
  s.process_cpu_utilization = 0.0;
  s.others_cpu_utilization = 0.0;
  s.frequency_ratio = 1.0;
  return s;
}

TEST(ProfilerTest, ParsesEveryCatalogKeyAndToleratesMissingOnes) {
  const BranchCosts full = costs_of(
      R"({"latency_ms":{"median":2.5,"p90":3.0},"peak_memory_bytes":1000,"weight_bytes":5,
          "macs":9e6,"memory_access_bytes":4e5,"accuracy":0.91,"precision":"int8"})");
  EXPECT_EQ(full.name, "b");
  EXPECT_DOUBLE_EQ(*full.latency_median_ms, 2.5);
  EXPECT_DOUBLE_EQ(*full.latency_p90_ms, 3.0);
  EXPECT_DOUBLE_EQ(*full.memory_bytes, 1000);  // peak wins over weights + activations
  EXPECT_DOUBLE_EQ(*full.macs, 9e6);
  EXPECT_DOUBLE_EQ(*full.memory_access_bytes, 4e5);
  EXPECT_DOUBLE_EQ(*full.accuracy, 0.91);
  EXPECT_TRUE(full.int8);

  const BranchCosts split =
      costs_of(R"({"weight_bytes":300,"activation_bytes":200,"latency_ms":1})");
  EXPECT_DOUBLE_EQ(*split.memory_bytes, 500);
  EXPECT_DOUBLE_EQ(*split.latency_median_ms, 1.0);  // a plain number is the median

  const BranchCosts empty = costs_of("{}");
  EXPECT_FALSE(empty.latency_median_ms);
  EXPECT_FALSE(empty.memory_bytes);
  EXPECT_FALSE(empty.macs);
  EXPECT_FALSE(empty.accuracy);

  // keys of a newer exporter are ignored
  const BranchCosts newer = costs_of(R"({"accuracy":0.5,"thermal_state":{"zone":3}})");
  EXPECT_DOUBLE_EQ(*newer.accuracy, 0.5);

  BranchCosts costs;
  EXPECT_FALSE(parse_branch_costs("x", "[1,2]", &costs).ok());
  EXPECT_FALSE(parse_branch_costs("x", "{not json", &costs).ok());
}

TEST(ProfilerTest, CostsBreakingTheSchemaAreRefusedNotIgnored) {
  for (const char* bad :
       {R"({"latency_ms":{"median":"fast"}})",
        R"({"macs":[1]})",
        R"({"accuracy":null})",
        R"({"precision":8})",
        R"({"precision":"int4"})",
        R"({"latency_ms":-1})",
        R"({"latency_ms":{"p90":-0.5}})",
        R"({"latency_ms":{"batch":0}})",
        R"({"peak_memory_bytes":1e400})",
        R"({"weight_bytes":-3})",
        R"({"accuracy":91.2})",  // a percentage: accuracy is a fraction
        R"({"accuracy":-0.1})",
        R"({"parity_top1_agreement":1.5})",
        R"({"pareto":1})",
        R"({"energy_model":7})",
        R"({"latency_by_threads":{"threads":2}})",
        R"({"latency_by_threads":[{"threads":1,"median":0.1}]})",
        R"({"latency_by_threads":[{"threads":2.5,"median":0.1}]})",
        R"({"latency_by_threads":[{"threads":2000,"median":0.1}]})",
        R"({"latency_by_threads":[{"median":0.1}]})",
        R"({"latency_by_threads":[{"threads":2,"median":0}]})",
        R"({"latency_by_threads":[{"threads":2,"median":0.1,"p90":-1}]})",
        R"({"latency_by_threads":[{"threads":3,"median":0.1},{"threads":2,"median":0.1}]})",
        R"({"latency_by_threads":[{"threads":2,"median":0.1},{"threads":2,"median":0.1}]})",
        R"({"latency_by_threads":[7]})"}) {
    BranchCosts costs;
    const Status s = parse_branch_costs("x", bad, &costs);
    EXPECT_EQ(s.code, ErrorCode::kFormat) << bad;
    EXPECT_NE(s.message.find("branch 'x'"), std::string::npos) << s.message;
  }
  BranchCosts costs;
  const Status s = parse_branch_costs("x", R"({"accuracy":91.2})", &costs);
  EXPECT_NE(s.message.find("costs.accuracy must be in [0, 1"), std::string::npos) << s.message;
  const Status order = parse_branch_costs(
      "x", R"({"latency_by_threads":[{"threads":4,"median":1},{"threads":3,"median":1}]})", &costs);
  EXPECT_NE(order.message.find("latency_by_threads[1].threads must be larger"), std::string::npos)
      << order.message;
  // a bound on the entries, so that a hostile catalog cannot make the loop's selection huge
  std::string many = R"({"latency_by_threads":[)";
  for (size_t t = 2; t < kMaxThreadLatencies + 3; ++t)
    many +=
        (t > 2 ? "," : "") + std::string(R"({"threads":)") + std::to_string(t) + R"(,"median":1})";
  const Status too_many = parse_branch_costs("x", many + "]}", &costs);
  EXPECT_NE(too_many.message.find("more than 64 entries"), std::string::npos) << too_many.message;
}

TEST(ProfilerTest, CostsRoundTripThroughTheirJson) {
  BranchCosts c;
  c.macs = 9e6;
  c.params = 78000;
  c.weight_bytes = 312000;
  c.activation_bytes = 4096;
  c.memory_bytes = 316096;
  c.memory_access_bytes = 4e5;
  c.latency_median_ms = 0.4;
  c.latency_p90_ms = 0.5;
  c.latency_batch = 1;
  c.latency_device = "cpu, 1 thread";
  c.prepare_ms = 3.5;
  c.libtorch_eager_latency_ms = 1.25;
  c.energy_mj = 0.05;
  c.energy_model = "model";
  c.int8 = true;
  c.accuracy = 0.91;
  c.accuracy_images = 10000;
  c.parity_max_logit_diff = 1e-5;
  c.parity_top1_agreement = 0.995;
  c.pareto = true;
  c.latency_by_threads = {{2, 0.25, 0.3}, {4, 0.2, 0.26}};
  const nlohmann::json j = c;
  // counts are written as integers, as the exporter always did
  EXPECT_TRUE(j["macs"].is_number_unsigned());
  EXPECT_EQ(j["latency_ms"]["batch"], 1);
  EXPECT_EQ(j["precision"], "int8");
  const BranchCosts back = costs_of(j.dump());
  EXPECT_EQ(nlohmann::json(back), j);
  EXPECT_EQ(*back.latency_device, "cpu, 1 thread");
  EXPECT_DOUBLE_EQ(*back.accuracy, 0.91);
  EXPECT_TRUE(*back.pareto);
  ASSERT_EQ(back.latency_by_threads.size(), 2u);
  EXPECT_EQ(back.latency_by_threads[1].threads, 4);
  EXPECT_DOUBLE_EQ(back.latency_by_threads[1].p90_ms, 0.26);
  // nothing set: only the precision
  EXPECT_EQ(nlohmann::json(BranchCosts{}), nlohmann::json({{"precision", "fp32"}}));
}

TEST(ProfilerTest, IdleContextPredictsTheCatalogLatency) {
  Profiler profiler({costs_of(R"({"latency_ms":{"median":2.0},"peak_memory_bytes":64})")});
  const auto& e = profiler.predict(idle_context());
  ASSERT_EQ(e.size(), 1u);
  EXPECT_TRUE(e[0].latency_known);
  EXPECT_DOUBLE_EQ(e[0].latency_ms, 2.0);
  EXPECT_DOUBLE_EQ(e[0].latency_uncorrected_ms, 2.0);
  EXPECT_TRUE(e[0].memory_known);
  EXPECT_DOUBLE_EQ(e[0].memory_bytes, 64);
  EXPECT_FALSE(e[0].energy_known);  // no MACs, no memory traffic, no power
  EXPECT_FALSE(e[0].accuracy_known);
}

TEST(ProfilerTest, ContentionScalesLatency) {
  Profiler profiler({costs_of(R"({"latency_ms":{"median":1.0}})")});
  // Two busy cores taken by others + our thread on two cores: 3 threads share 2 cores.
  ContextSample busy = idle_context();
  busy.cpu_utilization = 1.0;
  busy.others_cpu_utilization = 1.0;
  EXPECT_NEAR(profiler.contention(busy).cpu, 1.5, 1e-12);
  EXPECT_NEAR(profiler.predict(busy)[0].latency_ms, 1.5, 1e-12);

  // One other busy core: our thread still has a core of its own.
  ContextSample half = idle_context();
  half.others_cpu_utilization = 0.5;
  EXPECT_DOUBLE_EQ(profiler.contention(half).cpu, 1.0);

  // Half clock doubles latency; a cgroup quota of one core counts as one core.
  ContextSample slow = idle_context();
  slow.frequency_ratio = 0.5;
  EXPECT_DOUBLE_EQ(profiler.contention(slow).frequency, 2.0);
  ContextSample capped = idle_context();
  capped.cgroup_cpu_limit_cores = 1.0;
  capped.others_cpu_utilization = 0.5;  // one core busy of two
  EXPECT_DOUBLE_EQ(profiler.contention(capped).cpu, 2.0);

  // Saturated CPUs: four other runnable tasks while utilisation can only show the cores that
  // are not ours. The runnable count wins: 5 threads share 2 cores.
  ContextSample saturated = idle_context();
  saturated.others_cpu_utilization = 0.6;
  saturated.procs_running = 6;
  saturated.own_runnable_threads = 2;  // the inference thread and the sampling thread
  EXPECT_DOUBLE_EQ(*saturated.others_runnable(), 4);
  EXPECT_DOUBLE_EQ(profiler.contention(saturated).cpu, 2.5);
  // The larger of the two: utilisation of bursty others that the snapshot missed.
  saturated.procs_running = 2;
  EXPECT_DOUBLE_EQ(profiler.contention(saturated).cpu, (1.2 + 1) / 2);

  // A count the previous sample did not show counts only as far as it showed one: a task
  // runnable at one instant is not a load to predict with (sustained_runnable)...
  saturated.procs_running = 6;
  saturated.previous_others_runnable = 1;
  EXPECT_DOUBLE_EQ(profiler.contention(saturated).cpu, (1.2 + 1) / 2);
  EXPECT_FALSE(profiler.contention(saturated).settled);  // not yet known which
  saturated.previous_others_runnable = 4;
  EXPECT_DOUBLE_EQ(profiler.contention(saturated).cpu, 2.5);
  EXPECT_TRUE(profiler.contention(saturated).settled);
  // a rise that utilisation already shows leaves nothing unsettled
  saturated.procs_running = 3;
  saturated.previous_others_runnable = 0;
  EXPECT_DOUBLE_EQ(profiler.contention(saturated).cpu, (1.2 + 1) / 2);
  EXPECT_TRUE(profiler.contention(saturated).settled);
  // so does one that leaves our thread a core of its own either way: 0 -> 1 other on 2 cores
  ContextSample one_more = idle_context();
  one_more.others_cpu_utilization = 0;
  one_more.procs_running = 3;
  one_more.own_runnable_threads = 2;
  one_more.previous_others_runnable = 0;
  EXPECT_DOUBLE_EQ(profiler.contention(one_more).cpu, 1.0);
  EXPECT_TRUE(profiler.contention(one_more).settled);
  saturated.procs_running = 6;
  // ... and every snapshot counts without it
  DeviceProfile snapshots;
  snapshots.sustained_runnable = false;
  saturated.previous_others_runnable = 1;
  EXPECT_DOUBLE_EQ(
      Profiler({costs_of(R"({"latency_ms":{"median":1.0}})")}, snapshots).contention(saturated).cpu,
      2.5);

  // Without utilisation, the run queue minus the sampling thread stands in.
  ContextSample queue;
  queue.cpu_count = 2;
  queue.procs_running = 4;
  EXPECT_DOUBLE_EQ(profiler.contention(queue).cpu, 2.0);

  // The first probe sets the reference cache rate; a later drop slows predictions.
  ContextSample cached = idle_context();
  cached.cache_rate = 0.4;
  EXPECT_DOUBLE_EQ(profiler.contention(cached).cache, 1.0);
  cached.cache_rate = 0.2;
  EXPECT_DOUBLE_EQ(profiler.contention(cached).cache, 1.0 + 0.5 * 0.5);
}

TEST(ProfilerTest, EnergyFollowsTheCorrectedModelOrMeasuredPower) {
  DeviceProfile device;
  Profiler profiler(
      {costs_of(R"({"latency_ms":{"median":2.0},"macs":1e6,"memory_access_bytes":1e5})"),
       costs_of(R"({"latency_ms":{"median":2.0},"macs":1e6,"precision":"int8"})")},
      device);
  ContextSample s = idle_context();
  s.cache_rate = 0.25;
  const auto& e = profiler.predict(s);
  // E = e_mac*MACs + M*(r*e_cache + (1-r)*e_dram), pJ -> mJ; the DRAM term is multiplied by M.
  const double expected_pj = device.e_mac_pj * 1e6 + 1e5 * (0.25 * device.e_cache_pj_per_byte +
                                                            0.75 * device.e_dram_pj_per_byte);
  ASSERT_TRUE(e[0].energy_known);
  EXPECT_FALSE(e[0].energy_measured);
  EXPECT_NEAR(e[0].energy_mj, expected_pj * 1e-9, 1e-15);
  EXPECT_NEAR(e[1].energy_mj, device.e_mac_int8_pj * 1e6 * 1e-9, 1e-15);

  // Measured power: 3 W x 2 ms = 6 mJ.
  s.powercap_power_w = 3.0;
  const auto& measured = profiler.predict(s);
  EXPECT_TRUE(measured[0].energy_measured);
  EXPECT_NEAR(measured[0].energy_mj, 6.0, 1e-12);
  EXPECT_EQ(profiler.energy_correction(), 0.0);
  const double model0 = profiler.model_energy_mj(0, 0.25),
               model1 = profiler.model_energy_mj(1, 0.25);

  // Branch 0 observed at 2 ms under 3 W: 6 mJ measured, so the model is scaled by 6 / model0,
  // and branch 1, never run, keeps its modelled cost relative to branch 0 at that scale.
  profiler.observe(0, 2.0);
  EXPECT_NEAR(profiler.energy_correction(), 6.0 / model0, 1e-9 * 6.0 / model0);
  const auto& corrected = profiler.predict(s);
  EXPECT_TRUE(corrected[1].energy_measured);
  EXPECT_NEAR(corrected[0].energy_mj, 6.0, 1e-9);
  EXPECT_NEAR(corrected[1].energy_mj, 6.0 * model1 / model0, 1e-9);
  // a moving average: a second measurement moves it a fifth of the way
  profiler.observe(0, 4.0);  // 12 mJ
  EXPECT_NEAR(profiler.energy_correction(), (0.8 * 6.0 + 0.2 * 12.0) / model0, 1e-9);

  // without a power reading, the model alone, and no observation changes the scale
  s.powercap_power_w.reset();
  const auto& unmeasured = profiler.predict(s);
  EXPECT_FALSE(unmeasured[1].energy_measured);
  EXPECT_NEAR(unmeasured[1].energy_mj, model1, 1e-15);
  const double before = profiler.energy_correction();
  profiler.observe(0, 2.0);
  EXPECT_EQ(profiler.energy_correction(), before);
}

TEST(ProfilerTest, OnlineCorrectionConvergesAndReducesError) {
  Profiler profiler({costs_of(R"({"latency_ms":{"median":1.0}})", "a"),
                     costs_of(R"({"latency_ms":{"median":4.0}})", "b")});
  const ContextSample s = idle_context();
  // This device runs branch a 1.6x slower than the catalog says.
  for (int i = 0; i < 40; ++i) {
    profiler.predict(s);
    profiler.observe(0, 1.6 * (i % 2 ? 1.02 : 0.98));
  }
  EXPECT_NEAR(profiler.correction(0), 1.6, 0.05);
  // An unobserved branch inherits the device-wide correction.
  EXPECT_NEAR(profiler.correction(1), 1.6, 0.05);
  const auto& e = profiler.predict(s);
  EXPECT_NEAR(e[0].latency_ms, 1.6, 0.08);
  EXPECT_DOUBLE_EQ(e[0].latency_uncorrected_ms, 1.0);

  const PredictionErrorStats stats = profiler.error_stats();
  EXPECT_EQ(stats.count, 40u);
  EXPECT_NEAR(stats.median_uncorrected, 0.6 / 1.6, 0.03);
  EXPECT_LT(stats.median_corrected, 0.05);
  EXPECT_LE(stats.median_corrected, stats.p90_corrected);
  EXPECT_LE(stats.median_uncorrected, stats.p90_uncorrected);

  // Bad observations are ignored.
  profiler.observe(0, -1);
  profiler.observe(0, std::nan(""));
  profiler.observe(7, 1.0);
  EXPECT_EQ(profiler.error_stats().count, 40u);
}

TEST(ProfilerTest, CorrectionSplitsABranchLevelFromTheDeviceDrift) {
  DeviceProfile device;
  device.level_memory = 0;  // no relaxation toward the mean (the next test)
  Profiler profiler({costs_of(R"({"latency_ms":{"median":1.0}})", "big"),
                     costs_of(R"({"latency_ms":{"median":0.5}})", "small")},
                    device);
  const ContextSample s = idle_context();
  auto run = [&](size_t branch, double ms, int times) {
    for (int i = 0; i < times; ++i) {
      profiler.predict(s);
      profiler.observe(branch, ms);
    }
  };
  // On this device "big" runs 1.2x its catalog latency, "small" exactly its catalog latency.
  run(0, 1.2, 30);
  run(1, 0.5, 30);
  EXPECT_NEAR(profiler.correction(0), 1.2, 0.02);
  EXPECT_NEAR(profiler.correction(1), 1.0, 0.02);
  // Load the context factors miss slows everything 2x while "small" runs: "big" is predicted
  // slower as well, though it is not running...
  run(1, 1.0, 30);
  EXPECT_NEAR(profiler.correction(1), 2.0, 0.1);
  EXPECT_GT(profiler.correction(0), 2.0);  // 2.4 less what the slow level of "small" took
  // ... and back to its own level once the load is gone: not stuck with what it last saw.
  run(1, 0.5, 30);
  EXPECT_NEAR(profiler.correction(0), 1.2, 0.05);
  // A short run in which "big" alone is slow (the selector tried it and backed off) leaves it
  // slower than the rest, so it is not tried again at once.
  run(0, 1.8, 3);
  run(1, 0.5, 30);
  EXPECT_NEAR(profiler.correction(1), 1.0, 0.05);
  EXPECT_GT(profiler.correction(0), 1.2);
}

TEST(ProfilerTest, ALevelLearntLongAgoRelaxesTowardTheMean) {
  DeviceProfile device;
  device.level_memory = 100;
  Profiler profiler({costs_of(R"({"latency_ms":{"median":1.0}})", "big"),
                     costs_of(R"({"latency_ms":{"median":1.0}})", "small")},
                    device);
  const ContextSample s = idle_context();
  // "big" is first seen in a bad moment (2x), then never chosen again while "small" runs.
  profiler.predict(s);
  profiler.observe(0, 2.0);
  for (int i = 0; i < 10; ++i) {
    profiler.predict(s);
    profiler.observe(1, 1.0);
  }
  EXPECT_GT(profiler.correction(0), 1.8);
  for (int i = 0; i < 1000; ++i) {
    profiler.predict(s);
    profiler.observe(1, 1.0);
  }
  // The geometric mean of the two levels: sqrt(2).
  EXPECT_NEAR(profiler.correction(0), std::sqrt(2.0), 0.01);
  EXPECT_NEAR(profiler.correction(1), 1.0, 0.01);  // the running branch keeps its own level
}

TEST(ProfilerTest, CorrectionJudgedAgainstAGivenContextFactor) {
  Profiler profiler({costs_of(R"({"latency_ms":{"median":1.0}})")});
  profiler.predict(idle_context());  // predicted 1 ms
  // The inference ran while load arrived that the next sample explains as a factor of 2: the
  // 2 ms observation is no surprise, so the correction stays 1; the error is still recorded
  // against the prediction it was made under.
  profiler.observe(0, 2.0, 2.0);
  EXPECT_NEAR(profiler.correction(0), 1.0, 1e-12);
  EXPECT_NEAR(profiler.error_stats().median_corrected, 0.5, 1e-12);
  profiler.observe(0, 2.0);  // against the last prediction's factor (1): 2x
  EXPECT_GT(profiler.correction(0), 1.1);
}

// one branch whose catalog says 1 ms, for the tail-factor cases
Profiler one_ms_branch(const DeviceProfile& device) {
  return Profiler({costs_of(R"({"latency_ms":{"median":1.0}})")}, device);
}

TEST(ProfilerTest, TailFactorFollowsTheSlowRequests) {
  DeviceProfile device;
  device.tail_quantile = 0.9;
  device.tail_window = 40;
  Profiler profiler = one_ms_branch(device);
  const ContextSample s = idle_context();
  EXPECT_DOUBLE_EQ(profiler.tail_factor(), 1.0);
  // Steady requests: no tail beyond the prediction.
  for (int i = 0; i < 40; ++i) {
    profiler.predict(s);
    profiler.observe(0, 1.0);
  }
  EXPECT_NEAR(profiler.tail_factor(), 1.0, 1e-9);
  // One request in four is preempted and takes 3x.
  for (int i = 0; i < 40; ++i) {
    profiler.predict(s);
    profiler.observe(0, i % 4 == 0 ? 3.0 : 1.0);
  }
  EXPECT_GT(profiler.tail_factor(), 1.5);
  const auto& e = profiler.predict(s);
  EXPECT_NEAR(e[0].latency_tail_ms, e[0].latency_ms * profiler.tail_factor(), 1e-12);
  EXPECT_GE(e[0].latency_tail_ms, e[0].latency_ms);

  // The spread is kept per contention level: a noisy loaded period does not widen the idle tail.
  Profiler levels = one_ms_branch(device);
  for (int i = 0; i < 40; ++i) {
    levels.predict(s);
    levels.observe(0, 1.0, 1.0);  // idle: steady
  }
  for (int i = 0; i < 40; ++i) {
    levels.predict(s);
    levels.observe(0, i % 3 == 0 ? 6.0 : 2.0, 2.0);  // factor 2: one request in three waits
  }
  EXPECT_GT(levels.tail_factor(2.0), 2.0);
  EXPECT_NEAR(levels.tail_factor(1.0), 1.0, 0.05);
  // A level without observations of its own uses the recent ones of every level.
  EXPECT_GT(levels.tail_factor(3.0), 1.5);
}

TEST(ProfilerTest, AContendedLevelStartsFromThePriorUntilItHasItsOwnTail) {
  DeviceProfile device;
  device.tail_quantile = 0.9;
  device.contended_tail_prior = 1.5;
  Profiler profiler = one_ms_branch(device);
  const ContextSample s = idle_context();
  for (int i = 0; i < 40; ++i) {
    profiler.predict(s);
    profiler.observe(0, 1.0, 1.0);  // a steady idle period
  }
  EXPECT_NEAR(profiler.tail_factor(1.0), 1.0, 1e-9);
  // a load starts: no contended observation yet, so the prior, not the steady idle tail
  EXPECT_DOUBLE_EQ(profiler.tail_factor(2.0), 1.5);
  EXPECT_DOUBLE_EQ(profiler.tail_factor(3.0), 1.5);
  // once the level has its own observations they decide, here a steadier one than the prior
  for (int i = 0; i < 10; ++i) {
    profiler.predict(s);
    profiler.observe(0, 2.0, 2.0);
  }
  EXPECT_NEAR(profiler.tail_factor(2.0), 1.0, 1e-9);
  EXPECT_DOUBLE_EQ(profiler.tail_factor(3.0), 1.5);  // other levels keep the prior
  device.contended_tail_prior = 1.0;                 // off
  Profiler plain = one_ms_branch(device);
  EXPECT_DOUBLE_EQ(plain.tail_factor(2.0), 1.0);
}

}  // namespace
}  // namespace adascale
