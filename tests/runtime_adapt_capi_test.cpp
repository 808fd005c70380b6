// C API of the adaptation loop: budgets, configure/start/stop/step, current branch, context,
// switch callback, automatic runs with latency feedback, estimates and statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "adascale.h"
#include "runtime/adapt/adaptation_loop.h"
#include "runtime/adapt/profiler.h"
#include "runtime/adapt/selector.h"
#include "runtime_adapt_test_util.h"
#include "runtime_test_util.h"

namespace adascale {
namespace {

using testing::FixtureRoot;

// Three branches with the same small graph and different catalog costs.
std::string write_bundle() {
  const std::string path = testing::write_same_graph_bundle(
      testing::temp_path("adapt_capi.bundle"), {"small", "medium", "large"},
      {R"({"latency_ms":{"median":0.5,"p90":0.6},)"
       R"("peak_memory_bytes":1000,"macs":1000,"accuracy":0.60})",
       R"({"latency_ms":{"median":2.0,"p90":2.5},)"
       R"("peak_memory_bytes":2000,"macs":4000,"accuracy":0.75})",
       R"({"latency_ms":{"median":8.0,"p90":9.0},)"
       R"("peak_memory_bytes":3000,"macs":16000,"accuracy":0.90})"});
  EXPECT_FALSE(path.empty());
  return path;
}

struct Events {
  std::vector<std::string> from, to, reasons;
  std::vector<double> observed;
  std::vector<int> nothing_fits;
};

void record(const adascale_switch_event* e, void* user) {
  Events* events = static_cast<Events*>(user);
  events->from.push_back(e->from ? e->from : "");
  events->to.push_back(e->to);
  events->reasons.push_back(e->reason);
  events->observed.push_back(e->observed_ms);
  events->nothing_fits.push_back(e->nothing_fits);
}

class AdaptCApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static const std::string path = write_bundle();
    ASSERT_EQ(adascale_open(path.c_str(), &rt_), ADASCALE_OK);
    fixture_.write("proc/stat",
                   "cpu  100 0 100 1000 0 0 0 0 0 0\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n"
                   "procs_running 1\n");
    fixture_.write("proc/meminfo", "MemTotal: 8000000 kB\nMemAvailable: 6000000 kB\n");
    fixture_.write("sys/class/power_supply/BAT0/capacity", "55\n");
    fixture_.write("sys/class/power_supply/BAT0/status", "Discharging\n");
    adascale_adapt_options options;
    adascale_adapt_options_init(&options);
    const std::string root = fixture_.root();
    options.context_root = root.c_str();
    options.probe_period_ms = 0;
    options.min_dwell_ms = 0;
    options.period_ms = 5;
    ASSERT_EQ(adascale_adapt_configure(rt_, &options), ADASCALE_OK);
  }
  void TearDown() override { adascale_close(rt_); }

  adascale_runtime* rt_ = nullptr;
  FixtureRoot fixture_{"capi"};
};

TEST_F(AdaptCApiTest, BudgetsAreValidatedWithMessages) {
  adascale_budgets budgets;
  adascale_budgets_init(&budgets);
  EXPECT_TRUE(std::isinf(budgets.latency_ms));
  EXPECT_EQ(adascale_set_budgets(rt_, &budgets), ADASCALE_OK);
  budgets.latency_ms = -2;
  EXPECT_EQ(adascale_set_budgets(rt_, &budgets), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(adascale_last_error(rt_), "latency"), nullptr);
  budgets.latency_ms = NAN;
  EXPECT_EQ(adascale_set_budgets(rt_, &budgets), ADASCALE_ERROR_INVALID_ARGUMENT);
  adascale_budgets_init(&budgets);
  budgets.memory_mode = ADASCALE_MEMORY_ABSOLUTE;
  budgets.memory_bytes = 0;
  EXPECT_EQ(adascale_set_budgets(rt_, &budgets), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(adascale_last_error(rt_), "memory"), nullptr);
  budgets.memory_mode = static_cast<adascale_memory_mode>(7);
  EXPECT_EQ(adascale_set_budgets(rt_, &budgets), ADASCALE_ERROR_INVALID_ARGUMENT);
  adascale_budgets_init(&budgets);
  budgets.energy_mj = -1;
  EXPECT_EQ(adascale_set_budgets(rt_, &budgets), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_set_budgets(rt_, nullptr), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_set_budgets(nullptr, &budgets), ADASCALE_ERROR_INVALID_ARGUMENT);

  adascale_adapt_options options;
  adascale_adapt_options_init(&options);
  options.period_ms = 0;
  EXPECT_EQ(adascale_adapt_configure(rt_, &options), ADASCALE_ERROR_INVALID_ARGUMENT);
}

// The loop's tail, backoff, near-tie, context-change and period settings: the C defaults are the
// loop's own, the ranges those of the scenario keys of the same names.
TEST_F(AdaptCApiTest, TailToleranceAndContextOptionsAreValidated) {
  adascale_adapt_options o;
  adascale_adapt_options_init(&o);
  const SelectorOptions selector;
  const DeviceProfile device;
  EXPECT_EQ(o.tail_latency, selector.tail_latency ? 1 : 0);
  EXPECT_EQ(o.tail_quantile, device.tail_quantile);
  EXPECT_EQ(o.trial_window_ms, selector.trial_window_ms);
  EXPECT_EQ(o.objective_tolerance, selector.objective_tolerance);
  EXPECT_EQ(o.context_change, selector.context_change);
  EXPECT_EQ(o.context_settle_ms, selector.context_settle_ms);
  EXPECT_EQ(o.contended_tail_prior, device.contended_tail_prior);
  EXPECT_EQ(o.period_jitter, AdaptationOptions{}.period_jitter);
  EXPECT_EQ(o.sustained_runnable, device.sustained_runnable ? 1 : 0);
  auto configure = [&](void (*edit)(adascale_adapt_options*)) {
    adascale_adapt_options changed;
    adascale_adapt_options_init(&changed);
    edit(&changed);
    return adascale_adapt_configure(rt_, &changed);
  };
  EXPECT_EQ(configure([](adascale_adapt_options* c) {
              c->tail_latency = 1;
              c->tail_quantile = 0.9;
              c->trial_window_ms = 0;
              c->objective_tolerance = 0;
              c->context_change = 0;
              c->context_settle_ms = 0;
              c->contended_tail_prior = 1;
              c->period_jitter = 0;
              c->sustained_runnable = 0;
            }),
            ADASCALE_OK);
  // each out-of-range value is refused with a message that names its option
  const std::vector<std::pair<const char*, void (*)(adascale_adapt_options*)>> bad = {
      {"tail_latency", [](adascale_adapt_options* c) { c->tail_latency = 2; }},
      {"tail_quantile", [](adascale_adapt_options* c) { c->tail_quantile = 0.3; }},
      {"tail_quantile", [](adascale_adapt_options* c) { c->tail_quantile = 1.5; }},
      {"trial_window_ms", [](adascale_adapt_options* c) { c->trial_window_ms = -1; }},
      {"objective_tolerance", [](adascale_adapt_options* c) { c->objective_tolerance = NAN; }},
      {"context_change", [](adascale_adapt_options* c) { c->context_change = 1.0; }},
      {"context_settle_ms", [](adascale_adapt_options* c) { c->context_settle_ms = -5; }},
      {"contended_tail_prior", [](adascale_adapt_options* c) { c->contended_tail_prior = 0.5; }},
      {"period_jitter", [](adascale_adapt_options* c) { c->period_jitter = -0.1; }},
      {"period_jitter", [](adascale_adapt_options* c) { c->period_jitter = 0.6; }},
      {"period_jitter", [](adascale_adapt_options* c) { c->period_jitter = NAN; }},
      {"sustained_runnable", [](adascale_adapt_options* c) { c->sustained_runnable = 2; }},
      {"sustained_runnable", [](adascale_adapt_options* c) { c->sustained_runnable = -1; }}};
  for (const auto& [name, edit] : bad) {
    EXPECT_EQ(configure(edit), ADASCALE_ERROR_INVALID_ARGUMENT) << name;
    const std::string message = adascale_last_error(rt_);
    EXPECT_NE(message.find("out of range"), std::string::npos) << message;
    EXPECT_NE(message.find(name), std::string::npos) << message;
  }
  // one line with the value and the range
  EXPECT_EQ(configure([](adascale_adapt_options* c) { c->period_jitter = 0.6; }),
            ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(adascale_last_error(rt_),
               "adaptation option out of range: period_jitter = 0.6 (in [0, 0.5])");
}

TEST_F(AdaptCApiTest, StepSelectsRunsAndFeedsBack) {
  Events events;
  ASSERT_EQ(adascale_set_switch_callback(rt_, record, &events), ADASCALE_OK);
  size_t index = 99;
  const char* name = nullptr;
  EXPECT_EQ(adascale_adapt_current_branch(rt_, &index, &name), ADASCALE_ERROR_NO_BRANCH_SELECTED);
  adascale_context context;
  EXPECT_EQ(adascale_adapt_last_context(rt_, &context), ADASCALE_ERROR_NOT_FOUND);

  adascale_budgets budgets;
  adascale_budgets_init(&budgets);
  budgets.latency_ms = 3;
  ASSERT_EQ(adascale_set_budgets(rt_, &budgets), ADASCALE_OK);
  ASSERT_EQ(adascale_adapt_step(rt_), ADASCALE_OK);
  ASSERT_EQ(adascale_adapt_current_branch(rt_, &index, &name), ADASCALE_OK);
  EXPECT_EQ(index, 1u);
  EXPECT_STREQ(name, "medium");
  ASSERT_EQ(events.to.size(), 1u);
  EXPECT_EQ(events.from[0], "");
  EXPECT_EQ(events.to[0], "medium");
  EXPECT_EQ(events.reasons[0], "initial");

  ASSERT_EQ(adascale_adapt_last_context(rt_, &context), ADASCALE_OK);
  EXPECT_TRUE(context.present & ADASCALE_CTX_CPU_COUNT);
  EXPECT_EQ(context.cpu_count, 2);
  EXPECT_TRUE(context.present & ADASCALE_CTX_MEMINFO);
  EXPECT_EQ(context.mem_available_bytes, 6000000.0 * 1024);
  EXPECT_TRUE(context.present & ADASCALE_CTX_AVAILABLE_MEMORY);
  EXPECT_TRUE(context.present & ADASCALE_CTX_BATTERY_CAPACITY);
  EXPECT_EQ(context.battery_capacity_pct, 55);
  EXPECT_TRUE(context.present & ADASCALE_CTX_BATTERY_STATUS);
  EXPECT_EQ(context.battery_discharging, 1);
  EXPECT_FALSE(context.present & ADASCALE_CTX_TEMPERATURE);
  EXPECT_FALSE(context.present & ADASCALE_CTX_CACHE_RATE);

  double latency = 0, memory = 0, energy = 0;
  ASSERT_EQ(adascale_adapt_estimate(rt_, 2, &latency, &memory, &energy), ADASCALE_OK);
  EXPECT_DOUBLE_EQ(latency, 8.0);
  EXPECT_DOUBLE_EQ(memory, 3000);
  EXPECT_GT(energy, 0);
  EXPECT_EQ(adascale_adapt_estimate(rt_, 3, &latency, nullptr, nullptr),
            ADASCALE_ERROR_OUT_OF_RANGE);

  // Measured elsewhere: medium takes 50 ms on this device, so even small (0.5 x 25) misses 3 ms.
  for (int i = 0; i < 5; ++i) ASSERT_EQ(adascale_adapt_report_latency(rt_, 1, 50.0), ADASCALE_OK);
  EXPECT_EQ(adascale_adapt_report_latency(rt_, 9, 1.0), ADASCALE_ERROR_OUT_OF_RANGE);
  EXPECT_EQ(adascale_adapt_report_latency(rt_, 0, -1.0), ADASCALE_ERROR_INVALID_ARGUMENT);
  ASSERT_EQ(adascale_adapt_step(rt_), ADASCALE_OK);
  ASSERT_EQ(events.to.size(), 2u);
  EXPECT_EQ(events.from[1], "medium");
  EXPECT_EQ(events.to[1], "small");
  EXPECT_EQ(events.reasons[1], "nothing-fits");
  EXPECT_EQ(events.nothing_fits[1], 1);
  EXPECT_DOUBLE_EQ(events.observed[1], 50.0);
  adascale_adapt_stats stats;
  ASSERT_EQ(adascale_adapt_get_stats(rt_, &stats), ADASCALE_OK);
  EXPECT_EQ(stats.nothing_fits, 1);
  EXPECT_EQ(stats.iterations, 2u);
  EXPECT_EQ(stats.observations, 5u);
  EXPECT_EQ(stats.error_count, 5u);
  EXPECT_GE(stats.p90_error_uncorrected, stats.median_error_uncorrected);

  // run_auto runs the loop's branch and reports its latency.
  std::vector<float> image(3 * 8 * 8, 0.25f), logits(5), expected(5);
  ASSERT_EQ(adascale_run_auto(rt_, image.data(), image.size(), logits.data(), logits.size()),
            ADASCALE_OK)
      << adascale_last_error(rt_);
  EXPECT_EQ(adascale_is_cached(rt_, "small"), 1);
  ASSERT_EQ(adascale_run(rt_, image.data(), image.size(), expected.data(), 5), ADASCALE_OK);
  for (int i = 0; i < 5; ++i) EXPECT_FLOAT_EQ(logits[i], expected[i]);
  ASSERT_EQ(adascale_adapt_step(rt_), ADASCALE_OK);
  ASSERT_EQ(adascale_adapt_get_stats(rt_, &stats), ADASCALE_OK);
  EXPECT_EQ(stats.observations, 6u);
  ASSERT_EQ(adascale_set_switch_callback(rt_, nullptr, nullptr), ADASCALE_OK);
}

TEST_F(AdaptCApiTest, RunAutoDecidesOnFirstUseAndTheThreadStartsAndStops) {
  std::vector<float> image(3 * 8 * 8, 0.5f), logits(5);
  // No step yet: run_auto makes the first decision itself (no budgets: the most accurate).
  ASSERT_EQ(adascale_run_auto(rt_, image.data(), image.size(), logits.data(), logits.size()),
            ADASCALE_OK);
  const char* name = nullptr;
  ASSERT_EQ(adascale_adapt_current_branch(rt_, nullptr, &name), ADASCALE_OK);
  EXPECT_STREQ(name, "large");

  ASSERT_EQ(adascale_adapt_start(rt_), ADASCALE_OK);
  adascale_adapt_options options;
  adascale_adapt_options_init(&options);
  EXPECT_EQ(adascale_adapt_configure(rt_, &options), ADASCALE_ERROR_UNSUPPORTED);
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(adascale_run_auto(rt_, image.data(), image.size(), logits.data(), logits.size()),
              ADASCALE_OK);
  ASSERT_EQ(adascale_adapt_stop(rt_), ADASCALE_OK);
  // read after the stop: the thread steps once before it looks at the stop flag, so this holds
  // however late a loaded machine scheduled it
  adascale_adapt_stats stats;
  ASSERT_EQ(adascale_adapt_get_stats(rt_, &stats), ADASCALE_OK);
  EXPECT_GE(stats.iterations, 2u);  // the run_auto step and at least one of the thread
  ASSERT_EQ(adascale_adapt_stop(rt_), ADASCALE_OK);  // idempotent
  // Bad input is reported by the run itself.
  EXPECT_EQ(adascale_run_auto(rt_, image.data(), 7, logits.data(), logits.size()),
            ADASCALE_ERROR_INVALID_ARGUMENT);
  // Closing with a running loop stops it (TearDown closes after this start).
  ASSERT_EQ(adascale_adapt_start(rt_), ADASCALE_OK);
}

// A handle opened on two threads, with a catalog that shows large faster on two threads: the loop
// picks the branch with its threads, run_auto runs it so and leaves the handle's own setting.
TEST(AdaptCApiThreadsTest, RunAutoRunsTheChosenThreadsAndKeepsTheHandlesOwn) {
  const std::string path = testing::write_same_graph_bundle(
      testing::temp_path("adapt_threads.bundle"), {"small", "large"},
      {R"({"latency_ms":{"median":0.5,"p90":0.6},"accuracy":0.60})",
       R"({"latency_ms":{"median":8.0,"p90":9.0},"accuracy":0.90,)"
       R"("latency_by_threads":[{"threads":2,"median":4.5,"p90":4.8}]})"});
  ASSERT_FALSE(path.empty());
  FixtureRoot fixture("capi_threads");
  fixture.write("proc/stat",
                "cpu  100 0 100 1000 0 0 0 0 0 0\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n"
                "procs_running 1\n");
  fixture.write("proc/meminfo", "MemTotal: 8000000 kB\nMemAvailable: 6000000 kB\n");
  for (const int opened : {1, 2}) {
    adascale_runtime* rt = nullptr;
    char message[256];
    ASSERT_EQ(adascale_open_ex(path.c_str(), ADASCALE_BACKEND_XNNPACK, opened, &rt, message,
                               sizeof(message)),
              ADASCALE_OK)
        << message;
    adascale_adapt_options options;
    adascale_adapt_options_init(&options);
    const std::string root = fixture.root();
    options.context_root = root.c_str();
    options.probe_period_ms = 0;
    ASSERT_EQ(adascale_adapt_configure(rt, &options), ADASCALE_OK);
    adascale_budgets budgets;
    adascale_budgets_init(&budgets);
    budgets.latency_ms = 6;
    ASSERT_EQ(adascale_set_budgets(rt, &budgets), ADASCALE_OK);
    ASSERT_EQ(adascale_set_threads(rt, 1), ADASCALE_OK);
    std::vector<float> image(3 * 8 * 8, 0.5f), logits(5);
    ASSERT_EQ(adascale_run_auto(rt, image.data(), image.size(), logits.data(), logits.size()),
              ADASCALE_OK);
    const char* name = nullptr;
    int threads = -1;
    ASSERT_EQ(adascale_adapt_current_branch(rt, nullptr, &name), ADASCALE_OK);
    ASSERT_EQ(adascale_adapt_current_threads(rt, &threads), ADASCALE_OK);
    // on one thread large misses 6 ms: small; on two, large on two threads fits
    EXPECT_STREQ(name, opened == 2 ? "large" : "small");
    EXPECT_EQ(threads, opened == 2 ? 2 : 0);
    EXPECT_EQ(adascale_threads(rt), 1);
    EXPECT_EQ(adascale_adapt_current_threads(rt, nullptr), ADASCALE_ERROR_INVALID_ARGUMENT);
    adascale_close(rt);
  }
}

TEST(AdaptCApiNullTest, NullHandlesAreRejected) {
  adascale_budgets budgets;
  adascale_budgets_init(&budgets);
  EXPECT_EQ(adascale_adapt_start(nullptr), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_adapt_stop(nullptr), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_adapt_step(nullptr), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_adapt_current_branch(nullptr, nullptr, nullptr),
            ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_run_auto(nullptr, nullptr, 0, nullptr, 0), ADASCALE_ERROR_INVALID_ARGUMENT);
  adascale_adapt_stats stats;
  EXPECT_EQ(adascale_adapt_get_stats(nullptr, &stats), ADASCALE_ERROR_INVALID_ARGUMENT);
}

}  // namespace
}  // namespace adascale
