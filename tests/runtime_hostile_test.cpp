// Hostile bundles and misuse of the runtime: each case ends in a one-line error, never a crash,
// a hang or a silent default (docs/robustness.md lists what is checked where).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "adascale.h"
#include "bundle_fixture.h"
#include "runtime/backend.h"
#include "runtime_test_util.h"

namespace adascale {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using testing::dump;
using testing::slurp;
using HostileBundle = testing::BundleFixture;

TEST_F(HostileBundle, DeeplyNestedCostsAreRefusedBeforeAnythingRecurses) {
  json catalog = json::parse(slurp(fs::path(path) / "catalog.json"));
  catalog["branches"][0]["costs"] = "@DEEP@";
  std::string text = catalog.dump(1);
  const int depth = 100000;
  std::string deep;
  deep.reserve(depth * 6 + 1);
  for (int i = 0; i < depth; ++i) deep += "{\"a\":";
  deep += "1";
  deep.append(depth, '}');
  text.replace(text.find("\"@DEEP@\""), 8, deep);
  reseal(text);
  expect_error(ErrorCode::kFormat, "nested deeper than");
  // the same as an attribute list of lists
  catalog["branches"][0]["nodes"][0]["attrs"]["kernel"] = "@DEEP@";
  text = catalog.dump(1);
  text.replace(text.find("\"@DEEP@\""), 8, std::string(depth, '[') + std::string(depth, ']'));
  reseal(text);
  expect_error(ErrorCode::kFormat, "nested deeper than");
}

TEST_F(HostileBundle, CostsBreakingTheirSchemaAreRefused) {
  edit_catalog([](json& c) { c["branches"][0]["costs"]["accuracy"] = 91.5; });
  expect_error(ErrorCode::kFormat, "branch 'full': costs.accuracy must be in [0, 1");
  edit_catalog([](json& c) { c["branches"][0]["costs"]["latency_ms"]["median"] = "fast"; });
  expect_error(ErrorCode::kFormat, "costs.latency_ms.median must be a number");
  edit_catalog([](json& c) { c["branches"][1]["costs"]["macs"] = -1; });
  expect_error(ErrorCode::kFormat, "costs.macs must be a finite number >= 0");
  // keys the runtime does not know stay readable, and are passed through
  edit_catalog([](json& c) { c["branches"][0]["costs"]["thermal_state"] = {{"zone", 3}}; });
  std::unique_ptr<Bundle> bundle;
  ASSERT_TRUE(Bundle::open(path, &bundle).ok());
  EXPECT_NE(bundle->branches()[0].costs_json.find("thermal_state"), std::string::npos);
}

TEST_F(HostileBundle, AttributesOfTheWrongTypeAreRefusedNotDefaulted) {
  // node 0 of "full" is a 3x3 conv2d; node 4 an add with a ReLU
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](json& n) { n["attrs"]["stride"] = "2"; }, "attr 'stride' must be a list of integers"},
      {[](json& n) { n["attrs"]["pad"] = "same"; }, "attr 'pad' must be a list of integers"},
      {[](json& n) { n["attrs"]["activation"] = 5; }, "attr 'activation' must be a string"},
      {[](json& n) { n["attrs"]["groups"] = "one"; }, "attr 'groups' must be an integer"},
      {[](json& n) { n["attrs"]["groups"] = 1.5; }, "attr 'groups' must be an integer"},
      {[](json& n) { n["attrs"]["kernel"] = {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3}; },
       "attr 'kernel' must be a list of integers"},
      {[](json& n) {
         n["attrs"]["dilaton"] = {2, 2};
       },
       "unknown attr 'dilaton' for op conv2d"},
      {[](json& n) { n["params"]["scale"] = "bn.scale"; },
       "unknown param slot 'scale' for op conv2d"},
      {[](json& n) {
         n["attrs"]["stride"] = {true, false};
       },
       "attr 'stride' must be a number"},
  };
  for (const auto& [edit, needle] : cases) {
    edit_catalog([&](json& c) { edit(c["branches"][0]["nodes"][0]); });
    expect_error(needle.rfind("attr 'stride' must be a number", 0) == 0 ? ErrorCode::kFormat
                                                                        : ErrorCode::kInvalidGraph,
                 needle);
  }
  edit_catalog([](json& c) { c["branches"][0]["nodes"][4]["attrs"]["activation"] = 1; });
  expect_error(ErrorCode::kInvalidGraph, "attr 'activation' must be a string");
  edit_catalog([](json& c) { c["branches"][0]["nodes"][9]["attrs"]["head"] = {1}; });
  expect_error(ErrorCode::kInvalidGraph, "attr 'head' must be a string");
}

TEST_F(HostileBundle, InputNormalizationMustKeepInputsFinite) {
  edit_catalog([](json& c) { c["input"]["std"][0] = 1e-45; });
  expect_error(ErrorCode::kFormat, "input std");
  edit_catalog([](json& c) { c["input"]["std"][1] = -0.2; });
  expect_error(ErrorCode::kFormat, "input std");
  edit_catalog([](json& c) { c["input"]["mean"][2] = 3e38; });
  expect_error(ErrorCode::kFormat, "input mean");
  // and the writer refuses what the reader would
  BundleWriter bad;
  testing::build_small_model(&bad);
  bad.set_input({1, 3, 8, 8}, {0.f, 0.f, 0.f}, {1e-45f, 1.f, 1.f});
  EXPECT_EQ(bad.write(testing::temp_path("bad_std.bundle")).code, ErrorCode::kFormat);
}

TEST_F(HostileBundle, Int8ScalesMustKeepRequantizationFinite) {
  // branch "int8": node 0 quantizes the input; a denormal scale made requantization NaN
  edit_catalog([](json& c) { c["branches"][2]["nodes"][0]["attrs"]["out_scale"] = 1e-45; });
  expect_error(ErrorCode::kInvalidGraph, "out_scale in [1e-12, 1e12]");
  edit_catalog([](json& c) { c["branches"][2]["nodes"][1]["attrs"]["out_scale"] = 1e20; });
  expect_error(ErrorCode::kInvalidGraph, "out_scale in [1e-12, 1e12]");
}

TEST_F(HostileBundle, UnknownKeysAreRefused) {
  edit_catalog([](json& c) { c["compression"] = "zip"; });
  expect_error(ErrorCode::kFormat, "unknown key 'compression'");
  edit_catalog([](json& c) { c["tensors"][0]["stride_bytes"] = 4; });
  expect_error(ErrorCode::kFormat, "unknown key 'stride_bytes'");
  edit_catalog([](json& c) { c["branches"][1]["nodes"][0]["param"] = json::object(); });
  expect_error(ErrorCode::kFormat, "unknown key 'param'");
  edit_catalog([](json& c) { c["branches"][1]["cost"] = json::object(); });
  expect_error(ErrorCode::kFormat, "unknown key 'cost'");
  edit_catalog([](json& c) { c["input"]["layout"] = "NHWC"; });
  expect_error(ErrorCode::kFormat, "input layout");
}

TEST_F(HostileBundle, SizesReadFromTheCatalogAreBounded) {
  edit_catalog([](json& c) { c["tensors"][0]["shape"] = {1, 1, 1, 1, 1, 1, 1, 1, 8, 3, 3, 3}; });
  expect_error(ErrorCode::kFormat, "more than 8 dimensions");
  edit_catalog([](json& c) { c["branches"][0]["name"] = std::string(5000, 'x'); });
  expect_error(ErrorCode::kFormat, "longer than 4096 bytes");
  edit_catalog([](json& c) { c["classes"] = std::vector<std::string>(70000, "c"); });
  expect_error(ErrorCode::kFormat, "class count: 70000 is more than the limit");
}

TEST_F(HostileBundle, FifoInPlaceOfAFileIsRefusedWithoutBlocking) {
  for (const char* file : {"weights.bin", "catalog.json"}) {
    ASSERT_TRUE(writer.write(path).ok());
    const fs::path target = fs::path(path) / file;
    fs::remove(target);
    ASSERT_EQ(::mkfifo(target.c_str(), 0600), 0);
    expect_error(ErrorCode::kIo, std::string(file) + " is not a regular file");
  }
}

TEST_F(HostileBundle, ReplacingABundleNeverLeavesThePathWithoutOne) {
  // a reader polls the path while the bundle is replaced again and again: every open must find a
  // complete bundle (the folder is swapped in one step)
  std::atomic<bool> done{false};
  std::atomic<int> opened{0}, failed{0}, attempts{0};
  std::string first_failure;
  std::thread reader([&] {
    while (!done.load()) {
      const Status s = open();
      ++attempts;
      if (s.ok()) {
        ++opened;
      } else if (failed++ == 0) {
        first_failure = s.message;
      }
    }
  });
  // at least 40 replacements, and more until the reader has looked often (it may be scheduled late)
  for (int i = 0; i < 40 || (attempts.load() < 20 && i < 20000); ++i)
    ASSERT_TRUE(writer.write(path).ok());
  done = true;
  reader.join();
  EXPECT_EQ(failed.load(), 0) << first_failure;
  EXPECT_GT(opened.load(), 0);
  // nothing left beside it
  for (const auto& entry : fs::directory_iterator(fs::path(path).parent_path())) {
    const std::string name = entry.path().filename().string();
    const std::string own = fs::path(path).filename().string();
    EXPECT_FALSE(name.rfind(own + ".", 0) == 0) << "left behind: " << name;
  }
}

TEST_F(HostileBundle, TemporariesOfDeadWritersAreCleanedUp) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);  // its pid now names no process
  const std::string dead = std::to_string(child);
  const std::string stale_tmp = path + ".tmp." + dead + ".1";
  const std::string stale_old = path + ".old." + dead + ".2";
  const std::string live = path + ".tmp.1.3";  // pid 1 is alive: its writer may be busy
  for (const auto& dir : {stale_tmp, stale_old, live}) {
    fs::create_directories(dir);
    dump(fs::path(dir) / "weights.bin", "half");
  }
  ASSERT_TRUE(writer.write(path).ok());
  EXPECT_FALSE(fs::exists(stale_tmp));
  EXPECT_FALSE(fs::exists(stale_old));
  EXPECT_TRUE(fs::exists(live));
  fs::remove_all(live);
  EXPECT_TRUE(open().ok());
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ADASCALE_SANITIZED 1
#endif

size_t virtual_memory_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmSize:", 0) == 0) return std::stoull(line.substr(7)) * 1024;
  return 0;
}

TEST(PreparedBranchPlan, AFailedReplanLeavesTheBranchUsable) {
#ifdef ADASCALE_SANITIZED
  GTEST_SKIP() << "address-space limits and sanitizer shadow memory do not mix";
#else
  BundleWriter writer;
  testing::build_small_model(&writer);
  const std::string path = testing::temp_path("replan.bundle");
  ASSERT_TRUE(writer.write(path).ok());
  std::unique_ptr<Bundle> bundle;
  ASSERT_TRUE(Bundle::open(path, &bundle).ok());
  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(make_reference_backend());
  backends.push_back(make_xnnpack_backend(1, true));
  for (const auto& backend : backends) {
    std::unique_ptr<PreparedBranch> prepared;
    ASSERT_TRUE(backend
                    ->prepare(*bundle->find_branch("full"), bundle->constants(),
                              bundle->input().nhwc(), &prepared)
                    .ok());
    std::mt19937 rng(5);
    const auto input = testing::random_floats(rng, 8 * 8 * 3, -1.f, 1.f);
    std::vector<float> before(testing::kClasses), after(testing::kClasses);
    ASSERT_TRUE(prepared->run(input.data(), 1, before.data(), before.size()).ok());

    // a batch whose activations (gigabytes) cannot be had under the limit
    if (testing::under_emulator()) GTEST_SKIP() << "qemu-user does not enforce RLIMIT_AS";
    const size_t vm = virtual_memory_bytes();
    ASSERT_GT(vm, 0u);
    rlimit old_limit{};
    ASSERT_EQ(::getrlimit(RLIMIT_AS, &old_limit), 0);
    rlimit tight = old_limit;
    tight.rlim_cur = vm + (256u << 20);
    if (old_limit.rlim_max != RLIM_INFINITY && old_limit.rlim_max < tight.rlim_cur)
      GTEST_SKIP() << "the hard address-space limit is below what the test needs";
    ASSERT_EQ(::setrlimit(RLIMIT_AS, &tight), 0);
    std::vector<float> logits(testing::kClasses);
    const int64_t huge = 2'000'000;
    // the input is not read when planning fails; twice, as an app retrying would
    const Status first = prepared->run(input.data(), huge, logits.data(), logits.size());
    const Status second = prepared->run(input.data(), huge, logits.data(), logits.size());
    ASSERT_EQ(::setrlimit(RLIMIT_AS, &old_limit), 0);
    EXPECT_EQ(first.code, ErrorCode::kOutOfMemory) << first.message;
    EXPECT_EQ(second.code, ErrorCode::kOutOfMemory) << second.message;
    EXPECT_NE(first.message.find("activations"), std::string::npos) << first.message;

    ASSERT_TRUE(prepared->run(input.data(), 1, after.data(), after.size()).ok());
    EXPECT_EQ(before, after) << backend->name();
  }
#endif
}

// --- C API: what a switch callback may call -------------------------------------------------

struct Reentry {
  adascale_runtime* rt = nullptr;
  int calls = 0;
  std::vector<std::pair<std::string, adascale_status>> refused, allowed;
};

void reenter(const adascale_switch_event*, void* user) {
  Reentry* r = static_cast<Reentry*>(user);
  ++r->calls;
  adascale_adapt_options options;
  adascale_adapt_options_init(&options);
  adascale_budgets budgets;
  adascale_budgets_init(&budgets);
  float input[3 * 8 * 8] = {0};
  float logits[testing::kClasses];
  size_t index = 0, count = 0;
  adascale_adapt_stats stats;
  r->refused = {
      {"configure", adascale_adapt_configure(r->rt, &options)},
      {"set_switch_callback", adascale_set_switch_callback(r->rt, nullptr, nullptr)},
      {"step", adascale_adapt_step(r->rt)},
      {"stop", adascale_adapt_stop(r->rt)},
      {"start", adascale_adapt_start(r->rt)},
      {"set_budgets", adascale_set_budgets(r->rt, &budgets)},
      {"select", adascale_select(r->rt, "full")},
      {"run", adascale_run(r->rt, input, 3 * 8 * 8, logits, testing::kClasses)},
      {"run_auto", adascale_run_auto(r->rt, input, 3 * 8 * 8, logits, testing::kClasses)},
      {"set_memory_budget", adascale_set_memory_budget(r->rt, 1 << 20)},
  };
  adascale_close(r->rt);  // ignored: the handle stays open
  r->allowed = {
      {"current_branch", adascale_adapt_current_branch(r->rt, &index, nullptr)},
      {"get_stats", adascale_adapt_get_stats(r->rt, &stats)},
      {"branch_count", adascale_branch_count(r->rt, &count)},
      {"report_latency", adascale_adapt_report_latency(r->rt, 0, 1.0)},
  };
}

TEST(SwitchCallback, CallsThatWouldChangeTheLoopUnderItsStepAreRefused) {
  BundleWriter writer;
  testing::build_small_model(&writer);
  const std::string path = testing::temp_path("callback.bundle");
  ASSERT_TRUE(writer.write(path).ok());
  Reentry r;
  ASSERT_EQ(adascale_open(path.c_str(), &r.rt), ADASCALE_OK);
  ASSERT_EQ(adascale_set_switch_callback(r.rt, reenter, &r), ADASCALE_OK);
  ASSERT_EQ(adascale_adapt_step(r.rt), ADASCALE_OK);  // the first decision is a switch
  ASSERT_EQ(r.calls, 1);
  for (const auto& [name, status] : r.refused)
    EXPECT_EQ(status, ADASCALE_ERROR_IN_CALLBACK) << name;
  for (const auto& [name, status] : r.allowed) EXPECT_EQ(status, ADASCALE_OK) << name;
  // outside the callback everything works again, the handle included
  float input[3 * 8 * 8] = {0};
  float logits[testing::kClasses];
  EXPECT_EQ(adascale_set_switch_callback(r.rt, nullptr, nullptr), ADASCALE_OK);
  EXPECT_EQ(adascale_run_auto(r.rt, input, 3 * 8 * 8, logits, testing::kClasses), ADASCALE_OK);
  adascale_adapt_options options;
  adascale_adapt_options_init(&options);
  EXPECT_EQ(adascale_adapt_configure(r.rt, &options), ADASCALE_OK);
  adascale_close(r.rt);
}

}  // namespace
}  // namespace adascale
