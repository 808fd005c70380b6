// C API model + sessions: sessions on several threads share one model's prepared weights and give
// the same bits as one session run alone; each branch is prepared once per model; the model lives
// until its last session; the switch-callback rules hold for sessions.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "adascale.h"
#include "adascale.hpp"
#include "runtime_test_util.h"

namespace adascale {
namespace {

constexpr size_t kImage = 3 * 8 * 8;

// The small model plus a branch that slices a shared weight and one that quantizes float weights
// to int8 when prepared, so that derived weights are shared too.
void build_model(BundleWriter* writer) {
  testing::build_small_model(writer);
  std::mt19937 rng(11);
  ASSERT_TRUE(writer->add_f32("mul5", {5}, testing::random_floats(rng, 5, 0.5f, 1.5f)).ok());
  ASSERT_TRUE(writer
                  ->add_f32("fc5.w", {testing::kClasses, 5},
                            testing::random_floats(rng, testing::kClasses * 5, -1.0f, 1.0f))
                  .ok());
  Branch sliced;
  sliced.name = "sliced";
  sliced.output = "logits";
  sliced.nodes = testing::small_classifier("block.w", "", "fc5.w");
  sliced.nodes[0].attrs.set("weight_slice", std::vector<int64_t>{5, 3});
  sliced.nodes[0].params["weight_mul"] = "mul5";
  ASSERT_TRUE(writer->add_branch(sliced).ok());

  Branch derived;
  derived.name = "int8_derived";
  derived.output = "logits";
  const Attrs qconv = Attrs()
                          .set("kernel", std::vector<int64_t>{3, 3})
                          .set("pad", std::vector<int64_t>{1, 1, 1, 1})
                          .set("activation", "relu")
                          .set("out_scale", 0.05)
                          .set("out_zero_point", -128.0)
                          .set("weight_quantize", "int8")
                          .set("bias_input_scale", 0.03);
  derived.nodes = {
      testing::make_node("quantize", {"input"}, "q", {},
                         Attrs().set("out_scale", 0.03).set("out_zero_point", 2.0)),
      testing::make_node("conv2d", {"q"}, "c1", {{"weight", "stem.w"}, {"bias", "stem.b"}}, qconv),
      testing::make_node("global_avg_pool", {"c1"}, "gap", {},
                         Attrs().set("out_scale", 0.02).set("out_zero_point", -100.0)),
      testing::make_node("dequantize", {"gap"}, "dq"),
      testing::make_node("flatten", {"dq"}, "flat"),
      testing::make_node("fully_connected", {"flat"}, "logits",
                         {{"weight", "fc.w"}, {"bias", "fc.b"}}),
  };
  ASSERT_TRUE(writer->add_branch(derived).ok());
}

const std::vector<std::string> kBranches = {"full", "early", "int8", "sliced", "int8_derived"};

struct Job {
  std::string branch;
  std::vector<float> input;  // 1 to 3 images
};

std::vector<Job> make_jobs(uint32_t seed, size_t count) {
  std::mt19937 rng(seed);
  std::vector<Job> jobs(count);
  for (Job& job : jobs) {
    job.branch = kBranches[rng() % kBranches.size()];
    job.input = testing::random_floats(rng, kImage * (1 + rng() % 3), -1.0f, 2.0f);
  }
  return jobs;
}

std::vector<float> run_job(adascale_session* session, const Job& job, adascale_status* status) {
  std::vector<float> logits(job.input.size() / kImage * testing::kClasses);
  *status = adascale_session_select(session, job.branch.c_str());
  if (*status == ADASCALE_OK)
    *status = adascale_session_run(session, job.input.data(), job.input.size(), logits.data(),
                                   logits.size());
  return logits;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Config {
  adascale_backend backend;
  int threads;  // per inference: 2 shares the model's thread pool among the sessions
};

std::string config_name(const Config& config) {
  const std::string threads = config.threads > 2   ? "_pool" + std::to_string(config.threads)
                              : config.threads > 1 ? "_pool"
                                                   : "";
  switch (config.backend) {
    case ADASCALE_BACKEND_XNNPACK:
      return "xnnpack" + threads;
    case ADASCALE_BACKEND_XNNPACK_PLAIN:
      return "xnnpack_plain" + threads;
    default:
      return "reference" + threads;
  }
}

void PrintTo(const Config& config, std::ostream* out) { *out << config_name(config); }

class CApiSessionTest : public ::testing::TestWithParam<Config> {
 protected:
  static void SetUpTestSuite() {
    BundleWriter writer;
    build_model(&writer);
    path_ = new std::string(testing::temp_path("sessions.bundle"));
    ASSERT_TRUE(writer.write(*path_).ok());
  }
  void SetUp() override {
    ASSERT_EQ(adascale_model_open(path_->c_str(), GetParam().backend, GetParam().threads, &model_),
              ADASCALE_OK)
        << adascale_model_open_error();
  }
  void TearDown() override { adascale_model_free(model_); }
  static std::string* path_;
  adascale_model* model_ = nullptr;
};
std::string* CApiSessionTest::path_ = nullptr;

TEST_P(CApiSessionTest, ConcurrentSessionsMatchOneSessionRunSequentially) {
  const std::vector<Job> jobs = make_jobs(3, 120);
  std::vector<std::vector<float>> expected(jobs.size());
  {
    adascale_session* alone = nullptr;
    ASSERT_EQ(adascale_session_new(model_, &alone), ADASCALE_OK);
    for (size_t i = 0; i < jobs.size(); ++i) {
      adascale_status status;
      expected[i] = run_job(alone, jobs[i], &status);
      ASSERT_EQ(status, ADASCALE_OK) << adascale_session_last_error(alone);
    }
    adascale_session_free(alone);  // the model drops the weights no session keeps
  }

  constexpr int kThreads = 4;
  std::atomic<int> mismatches{0}, failures{0}, churned{0};
  std::atomic<bool> running{true};
  // job i on the session, counted as a failure or a mismatch against the lone session's bits
  auto run_and_compare = [&](adascale_session* session, size_t i) {
    adascale_status status;
    const std::vector<float> logits = run_job(session, jobs[i], &status);
    if (status != ADASCALE_OK)
      ++failures;
    else if (!same_bits(logits, expected[i]))
      ++mismatches;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      adascale_session* session = nullptr;
      if (adascale_session_new(model_, &session) != ADASCALE_OK) {
        ++failures;
        return;
      }
      // one thread keeps nothing but the selected branch: it re-binds, and at times re-prepares
      // weights that no other session keeps, while the others run
      if (t == kThreads - 1) adascale_session_set_memory_budget(session, 0);
      std::vector<size_t> order(jobs.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), std::mt19937(100 + t));
      for (int pass = 0; pass < 2; ++pass)
        for (size_t i : order) run_and_compare(session, i);
      adascale_session_free(session);
    });
  }
  // sessions made and freed while the others run
  std::thread churn([&] {
    std::mt19937 rng(7);
    while (running.load() || churned.load() < 8) {
      adascale_session* session = nullptr;
      if (adascale_session_new(model_, &session) != ADASCALE_OK) {
        ++failures;
        return;
      }
      for (int k = 0; k < 3; ++k) run_and_compare(session, rng() % jobs.size());
      adascale_session_free(session);
      ++churned;
    }
  });
  for (std::thread& thread : threads) thread.join();
  running = false;
  churn.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_GE(churned.load(), 8);
  adascale_model_cache cache;
  ASSERT_EQ(adascale_model_cache_info(model_, &cache), ADASCALE_OK);
  EXPECT_EQ(cache.branches, 0u);  // every session is gone, and with them the weights
  EXPECT_EQ(cache.weight_bytes, 0u);
}

TEST_P(CApiSessionTest, EachBranchIsPreparedOncePerModel) {
  constexpr int kThreads = 4;
  std::vector<adascale_session*> sessions(kThreads, nullptr);
  for (auto& session : sessions) ASSERT_EQ(adascale_session_new(model_, &session), ADASCALE_OK);
  std::atomic<int> failures{0}, waiting{kThreads};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      --waiting;
      while (waiting.load() > 0) std::this_thread::yield();  // select all at once
      for (size_t k = 0; k < kBranches.size(); ++k) {
        const std::string& name = kBranches[(k + static_cast<size_t>(t)) % kBranches.size()];
        if (adascale_session_select(sessions[static_cast<size_t>(t)], name.c_str()) != ADASCALE_OK)
          ++failures;
      }
    });
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  adascale_model_cache cache;
  ASSERT_EQ(adascale_model_cache_info(model_, &cache), ADASCALE_OK);
  EXPECT_EQ(cache.branches, kBranches.size());
  EXPECT_EQ(cache.preparations, kBranches.size());
  // a session's budget counts every weight it keeps once, the model stores them once for all
  size_t branches = 0, session_bytes = 0;
  ASSERT_EQ(adascale_session_cache_info(sessions[0], &branches, &session_bytes), ADASCALE_OK);
  EXPECT_EQ(branches, kBranches.size());
  EXPECT_GT(session_bytes, cache.weight_bytes);  // the weights plus this session's arenas
  for (adascale_session* session : sessions) {
    for (const std::string& name : kBranches)
      EXPECT_EQ(adascale_session_is_cached(session, name.c_str()), 1) << name;
  }
  // a branch dropped by one session stays prepared while another keeps it
  ASSERT_EQ(adascale_session_set_memory_budget(sessions[0], 0), ADASCALE_OK);
  ASSERT_EQ(adascale_session_cache_info(sessions[0], &branches, nullptr), ADASCALE_OK);
  EXPECT_EQ(branches, 1u);
  ASSERT_EQ(adascale_session_select(sessions[0], "full"), ADASCALE_OK);
  ASSERT_EQ(adascale_model_cache_info(model_, &cache), ADASCALE_OK);
  EXPECT_EQ(cache.preparations, kBranches.size());
  for (adascale_session* session : sessions) adascale_session_free(session);
  ASSERT_EQ(adascale_model_cache_info(model_, &cache), ADASCALE_OK);
  EXPECT_EQ(cache.branches, 0u);
  // prepared again once a session wants it back
  adascale_session* again = nullptr;
  ASSERT_EQ(adascale_session_new(model_, &again), ADASCALE_OK);
  ASSERT_EQ(adascale_session_select(again, "int8"), ADASCALE_OK);
  ASSERT_EQ(adascale_model_cache_info(model_, &cache), ADASCALE_OK);
  EXPECT_EQ(cache.preparations, kBranches.size() + 1);
  adascale_session_free(again);
}

TEST_P(CApiSessionTest, SessionsRunTheirOwnAdaptationLoops) {
  constexpr int kThreads = 2;
  std::atomic<int> failures{0}, mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      adascale_session *automatic = nullptr, *manual = nullptr;
      if (adascale_session_new(model_, &automatic) != ADASCALE_OK ||
          adascale_session_new(model_, &manual) != ADASCALE_OK) {
        ++failures;
        return;
      }
      std::mt19937 rng(20 + t);
      for (int k = 0; k < 10; ++k) {
        const auto input = testing::random_floats(rng, kImage, -1.0f, 1.0f);
        std::vector<float> a(testing::kClasses), b(testing::kClasses);
        const char* name = nullptr;
        if (adascale_session_run_auto(automatic, input.data(), input.size(), a.data(), a.size()) !=
                ADASCALE_OK ||
            adascale_session_adapt_current_branch(automatic, nullptr, &name) != ADASCALE_OK ||
            adascale_session_select(manual, name) != ADASCALE_OK ||
            adascale_session_run(manual, input.data(), input.size(), b.data(), b.size()) !=
                ADASCALE_OK) {
          ++failures;
          continue;
        }
        if (!same_bits(a, b)) ++mismatches;
      }
      adascale_adapt_stats stats;
      if (adascale_session_adapt_get_stats(automatic, &stats) != ADASCALE_OK ||
          stats.iterations < 1 ||
          adascale_session_adapt_get_stats(manual, &stats) != ADASCALE_ERROR_NOT_FOUND)
        ++failures;  // the manual session never used its loop
      adascale_session_free(automatic);
      adascale_session_free(manual);
    });
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
}

// Every count of threads runs the same operators with the tiling set up for the largest pool, so
// the logits are the same bits whichever count runs them (nodes the pool does not make faster
// run on the calling thread: backend.h).
TEST_P(CApiSessionTest, EveryThreadCountGivesTheSameLogits) {
  adascale_session* session = nullptr;
  ASSERT_EQ(adascale_session_new(model_, &session), ADASCALE_OK);
  EXPECT_EQ(adascale_session_threads(session), 0);
  const int most = GetParam().backend == ADASCALE_BACKEND_REFERENCE ? 1 : GetParam().threads;
  EXPECT_EQ(adascale_session_max_threads(session), most);
  const std::vector<Job> jobs = make_jobs(11, 12);
  std::vector<std::vector<float>> expected;
  adascale_status status = ADASCALE_OK;
  for (const Job& job : jobs) {
    expected.push_back(run_job(session, job, &status));
    ASSERT_EQ(status, ADASCALE_OK) << adascale_session_last_error(session);
  }
  // this process's threads: a count between 1 and the largest starts its own pool when it
  // first runs (the largest one's started when the branches were prepared)
  auto process_threads = [] {
    const std::filesystem::directory_iterator tasks("/proc/self/task");
    return static_cast<size_t>(std::distance(begin(tasks), end(tasks)));
  };
  for (int threads = 1; threads <= most; ++threads) {
    ASSERT_EQ(adascale_session_set_threads(session, threads), ADASCALE_OK);
    EXPECT_EQ(adascale_session_threads(session), threads);
    const size_t before = process_threads();
    for (size_t i = 0; i < jobs.size(); ++i) {
      const std::vector<float> logits = run_job(session, jobs[i], &status);
      ASSERT_EQ(status, ADASCALE_OK) << adascale_session_last_error(session);
      EXPECT_TRUE(same_bits(logits, expected[i])) << jobs[i].branch << " on " << threads;
    }
    // (an emulator's own threads come and go)
    if (testing::under_emulator()) continue;
    if (threads > 1 && threads < most)
      EXPECT_EQ(process_threads(), before + static_cast<size_t>(threads - 1)) << threads;
    else
      EXPECT_EQ(process_threads(), before) << threads;
  }
  // more than the model was opened with, or negative: refused, naming the range
  EXPECT_EQ(adascale_session_set_threads(session, most + 1), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(adascale_session_last_error(session)).find("outside [0, "),
            std::string::npos)
      << adascale_session_last_error(session);
  EXPECT_EQ(adascale_session_set_threads(session, -1), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_session_threads(session), most);  // the last count that was accepted
  EXPECT_EQ(adascale_session_set_threads(nullptr, 1), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_session_threads(nullptr), -1);
  EXPECT_EQ(adascale_session_max_threads(nullptr), -1);
  adascale_session_free(session);
}

// XNNPACK alone with a pool: only XNNPACK's own kernels run on the pool's threads (the arch
// kernels are ThreadSanitizer-instrumented and the pool's synchronization is not).
INSTANTIATE_TEST_SUITE_P(CApiSession, CApiSessionTest,
                         ::testing::Values(Config{ADASCALE_BACKEND_XNNPACK, 1},
                                           Config{ADASCALE_BACKEND_XNNPACK_PLAIN, 1},
                                           Config{ADASCALE_BACKEND_REFERENCE, 1},
                                           Config{ADASCALE_BACKEND_XNNPACK_PLAIN, 2},
                                           Config{ADASCALE_BACKEND_XNNPACK_PLAIN, 3}),
                         [](const auto& info) { return config_name(info.param); });

class CApiSession : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    BundleWriter writer;
    build_model(&writer);
    path_ = new std::string(testing::temp_path("session_life.bundle"));
    ASSERT_TRUE(writer.write(*path_).ok());
  }
  static std::string* path_;
};
std::string* CApiSession::path_ = nullptr;

TEST_F(CApiSession, TheModelLivesUntilItsLastSession) {
  adascale_model* model = nullptr;
  ASSERT_EQ(adascale_model_open(path_->c_str(), ADASCALE_BACKEND_XNNPACK, 1, &model), ADASCALE_OK);
  EXPECT_STREQ(adascale_model_open_error(), "");
  adascale_session *first = nullptr, *second = nullptr;
  ASSERT_EQ(adascale_session_new(model, &first), ADASCALE_OK);
  ASSERT_EQ(adascale_session_select(first, "full"), ADASCALE_OK);
  adascale_model_free(model);  // the sessions keep it
  EXPECT_EQ(adascale_session_model(first), model);
  ASSERT_EQ(adascale_session_new(adascale_session_model(first), &second), ADASCALE_OK);
  size_t count = 0;
  ASSERT_EQ(adascale_model_branch_count(adascale_session_model(second), &count), ADASCALE_OK);
  EXPECT_EQ(count, kBranches.size());
  const Job job = make_jobs(5, 1)[0];
  adascale_status status;
  const std::vector<float> a = run_job(first, job, &status);
  ASSERT_EQ(status, ADASCALE_OK) << adascale_session_last_error(first);
  adascale_session_free(first);
  const std::vector<float> b = run_job(second, job, &status);  // prepared again if need be
  ASSERT_EQ(status, ADASCALE_OK) << adascale_session_last_error(second);
  EXPECT_TRUE(same_bits(a, b));
  adascale_session_free(second);  // frees the model
}

// the reference backend runs on the calling thread whatever was asked; a handle says so
TEST_F(CApiSession, MaxThreadsIsWhatAnInferenceMayUse) {
  struct Case {
    Config config;
    int expected;
  };
  for (const Case& c :
       {Case{{ADASCALE_BACKEND_REFERENCE, 4}, 1}, Case{{ADASCALE_BACKEND_XNNPACK_PLAIN, 3}, 3},
        Case{{ADASCALE_BACKEND_XNNPACK, 0}, 1}}) {
    adascale_runtime* handle = nullptr;
    ASSERT_EQ(
        adascale_open_ex(path_->c_str(), c.config.backend, c.config.threads, &handle, nullptr, 0),
        ADASCALE_OK);
    EXPECT_EQ(adascale_max_threads(handle), c.expected) << config_name(c.config);
    adascale_close(handle);
  }
  EXPECT_EQ(adascale_max_threads(nullptr), -1);
}

TEST_F(CApiSession, ErrorsAreReportedPerSessionAndPerOpen) {
  adascale_model* model = reinterpret_cast<adascale_model*>(&model);
  EXPECT_EQ(adascale_model_open("/nonexistent/x.bundle", ADASCALE_BACKEND_XNNPACK, 1, &model),
            ADASCALE_ERROR_IO);
  EXPECT_EQ(model, nullptr);
  EXPECT_NE(std::string(adascale_model_open_error()).find("x.bundle"), std::string::npos)
      << adascale_model_open_error();
  EXPECT_EQ(adascale_model_open(path_->c_str(), static_cast<adascale_backend>(7), 1, &model),
            ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(adascale_model_open_error(), "unknown backend 7");
  EXPECT_EQ(adascale_model_open(nullptr, ADASCALE_BACKEND_XNNPACK, 1, &model),
            ADASCALE_ERROR_INVALID_ARGUMENT);

  ASSERT_EQ(adascale_model_open(path_->c_str(), ADASCALE_BACKEND_XNNPACK, 1, &model), ADASCALE_OK);
  adascale_session *a = nullptr, *b = nullptr;
  EXPECT_EQ(adascale_session_new(nullptr, &a), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_session_new(model, nullptr), ADASCALE_ERROR_INVALID_ARGUMENT);
  ASSERT_EQ(adascale_session_new(model, &a), ADASCALE_OK);
  ASSERT_EQ(adascale_session_new(model, &b), ADASCALE_OK);
  EXPECT_EQ(adascale_session_select(a, "missing"), ADASCALE_ERROR_NOT_FOUND);
  EXPECT_STREQ(adascale_session_last_error(a), "no branch 'missing'");
  EXPECT_STREQ(adascale_session_last_error(b), "");  // errors stay with their session
  float input[kImage] = {0}, logits[testing::kClasses];
  EXPECT_EQ(adascale_session_run(b, input, kImage, logits, testing::kClasses),
            ADASCALE_ERROR_NO_BRANCH_SELECTED);
  EXPECT_NE(std::string(adascale_session_last_error(b)).find("no branch selected"),
            std::string::npos);
  EXPECT_STREQ(adascale_session_last_error(a), "no branch 'missing'");
  adascale_model_cache cache;
  EXPECT_EQ(adascale_model_cache_info(nullptr, &cache), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_session_model(nullptr), nullptr);
  adascale_session_free(nullptr);
  adascale_model_free(nullptr);
  adascale_session_free(a);
  adascale_session_free(b);
  adascale_model_free(model);
}

// What a switch callback may call on sessions: the same rules as for a handle.
struct SessionReentry {
  adascale_session* session = nullptr;
  adascale_session* other = nullptr;    // another session of the same model
  adascale_session* created = nullptr;  // made inside the callback
  int calls = 0;
  std::vector<std::pair<std::string, adascale_status>> refused, allowed;
};

void reenter_session(const adascale_switch_event*, void* user) {
  SessionReentry* r = static_cast<SessionReentry*>(user);
  ++r->calls;
  adascale_budgets budgets;
  adascale_budgets_init(&budgets);
  float input[kImage] = {0};
  float logits[testing::kClasses];
  size_t index = 0, count = 0;
  adascale_adapt_stats stats;
  adascale_model_cache cache;
  r->refused = {
      {"configure", adascale_session_adapt_configure(r->session, nullptr)},
      {"set_switch_callback", adascale_session_set_switch_callback(r->session, nullptr, nullptr)},
      {"step", adascale_session_adapt_step(r->session)},
      {"stop", adascale_session_adapt_stop(r->session)},
      {"set_budgets", adascale_session_set_budgets(r->session, &budgets)},
      {"select", adascale_session_select(r->session, "full")},
      {"run", adascale_session_run(r->session, input, kImage, logits, testing::kClasses)},
      {"run_auto", adascale_session_run_auto(r->session, input, kImage, logits, 5)},
      {"set_memory_budget", adascale_session_set_memory_budget(r->session, 1 << 20)},
      {"other select", adascale_session_select(r->other, "early")},
  };
  adascale_session_free(r->session);  // ignored: the session stays
  adascale_session_free(r->other);    // ignored as well
  adascale_model* model = adascale_session_model(r->session);
  r->allowed = {
      {"current_branch", adascale_session_adapt_current_branch(r->session, &index, nullptr)},
      {"get_stats", adascale_session_adapt_get_stats(r->session, &stats)},
      {"report_latency", adascale_session_adapt_report_latency(r->session, 0, 1.0)},
      {"model branch_count", adascale_model_branch_count(model, &count)},
      {"model cache_info", adascale_model_cache_info(model, &cache)},
      {"session_new", adascale_session_new(model, &r->created)},
  };
}

TEST_F(CApiSession, CallsThatWouldChangeASessionUnderItsLoopAreRefused) {
  adascale_model* model = nullptr;
  ASSERT_EQ(adascale_model_open(path_->c_str(), ADASCALE_BACKEND_XNNPACK, 1, &model), ADASCALE_OK);
  SessionReentry r;
  ASSERT_EQ(adascale_session_new(model, &r.session), ADASCALE_OK);
  ASSERT_EQ(adascale_session_new(model, &r.other), ADASCALE_OK);
  ASSERT_EQ(adascale_session_set_switch_callback(r.session, reenter_session, &r), ADASCALE_OK);
  ASSERT_EQ(adascale_session_adapt_step(r.session), ADASCALE_OK);  // the first decision switches
  ASSERT_EQ(r.calls, 1);
  for (const auto& [name, status] : r.refused)
    EXPECT_EQ(status, ADASCALE_ERROR_IN_CALLBACK) << name;
  for (const auto& [name, status] : r.allowed) EXPECT_EQ(status, ADASCALE_OK) << name;
  EXPECT_STREQ(adascale_session_last_error(r.session), "");  // a callback's calls set none
  // outside the callback everything works again
  float input[kImage] = {0}, logits[testing::kClasses];
  EXPECT_EQ(adascale_session_set_switch_callback(r.session, nullptr, nullptr), ADASCALE_OK);
  EXPECT_EQ(adascale_session_run_auto(r.session, input, kImage, logits, testing::kClasses),
            ADASCALE_OK);
  EXPECT_EQ(adascale_session_select(r.other, "early"), ADASCALE_OK);
  ASSERT_NE(r.created, nullptr);
  EXPECT_EQ(adascale_session_select(r.created, "int8"), ADASCALE_OK);
  adascale_session_free(r.session);
  adascale_session_free(r.other);
  adascale_session_free(r.created);
  adascale_model_free(model);
}

TEST_F(CApiSession, CppModelAndSessions) {
  const Model model(*path_);
  EXPECT_EQ(model.branch_names().size(), kBranches.size());
  const Job job = make_jobs(9, 1)[0];
  std::vector<std::vector<float>> outputs(2);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < outputs.size(); ++t)
    threads.emplace_back([&, t] {
      Session session(model);
      session.select(job.branch);
      outputs[t] = session.run(job.input);
    });
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(outputs[0].size(), job.input.size() / kImage * testing::kClasses);
  EXPECT_TRUE(same_bits(outputs[0], outputs[1]));
  try {
    Model missing("/nonexistent/x.bundle");
    FAIL() << "opened a missing bundle";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), ADASCALE_ERROR_IO);
  }
  Session session(model);
  try {
    session.select("missing");
    FAIL() << "selected a missing branch";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), ADASCALE_ERROR_NOT_FOUND);
    EXPECT_STREQ(e.what(), "no branch 'missing'");
  }
}

}  // namespace
}  // namespace adascale
