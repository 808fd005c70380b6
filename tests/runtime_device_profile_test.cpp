// On-device calibration: the device profile's file (round trip, hostile files), the interleaved
// timing, adascale_calibrate, and the latencies the adaptation loop predicts from
// (adascale_use_device_profile, adascale_latency_source), and adascale-run --calibrate. No
// assertion depends on how fast this machine is: the measured numbers are only checked for their
// structure, and the prediction checks feed latencies through adascale_adapt_report_latency.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "adascale.h"
#include "command_result.h"
#include "runtime/adapt/adaptation_loop.h"
#include "runtime/catalog_json.h"
#include "runtime/device_profile.h"
#include "runtime_adapt_test_util.h"
#include "runtime_test_util.h"

namespace adascale {
namespace {

namespace fs = std::filesystem;
using testing::FixtureRoot;

const char* kNames[] = {"small", "medium", "large"};
constexpr const char* kExportHost = "export host CPU, 1 thread";

// Three branches of one small graph whose catalog latencies are `latency_ms` (median; p90 1.1x).
std::string write_bundle(const std::string& name, const std::vector<double>& latency_ms) {
  std::vector<std::string> costs;
  for (int i = 0; i < 3; ++i)
    costs.push_back(nlohmann::json{
        {"latency_ms",
         {{"median", latency_ms[i]}, {"p90", 1.1 * latency_ms[i]}, {"device", kExportHost}}},
        {"peak_memory_bytes", 1000 * (i + 1)},
        {"macs", 1000 * (i + 1)},
        {"accuracy",
         0.6 + 0.1 * i}}.dump());
  const std::string path = testing::write_same_graph_bundle(
      testing::temp_path(name + ".bundle"), {kNames[0], kNames[1], kNames[2]}, costs);
  EXPECT_FALSE(path.empty());
  return path;
}

DeviceLatencyProfile sample_profile() {
  DeviceLatencyProfile p;
  p.cpu = describe_cpu();
  p.threads = 1;
  p.backend = "xnnpack";
  p.batch = 1;
  p.rounds = 5;
  for (int i = 0; i < 3; ++i)
    p.branches.push_back({kNames[i], 0.25 * (i + 1), 0.3 * (i + 1), "xnnpack", 200});
  return p;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// the status of parsing `text`, with the message checked to be one line
Status parse(const std::string& text) {
  DeviceLatencyProfile p;
  const Status s = parse_device_profile(text, "profile.json", &p);
  EXPECT_EQ(s.message.find('\n'), std::string::npos) << s.message;
  return s;
}

void expect_refused(const std::string& text, ErrorCode code, const std::string& needle) {
  const Status s = parse(text);
  EXPECT_EQ(s.code, code) << s.message;
  EXPECT_NE(s.message.find(needle), std::string::npos) << s.message;
  EXPECT_EQ(s.message.rfind("profile.json: ", 0), 0u) << s.message;
}

TEST(DeviceProfileFile, RoundTripsThroughJsonAndTheFile) {
  const DeviceLatencyProfile p = sample_profile();
  DeviceLatencyProfile back;
  ASSERT_TRUE(parse_device_profile(device_profile_to_text(p), "x", &back).ok());
  EXPECT_EQ(back.schema_version, kDeviceProfileSchemaVersion);
  EXPECT_EQ(back.cpu, p.cpu);
  EXPECT_EQ(back.threads, 1);
  EXPECT_EQ(back.backend, "xnnpack");
  EXPECT_EQ(back.batch, 1);
  EXPECT_EQ(back.rounds, 5);
  ASSERT_EQ(back.branches.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back.branches[i].name, p.branches[i].name);
    EXPECT_DOUBLE_EQ(back.branches[i].median_ms, p.branches[i].median_ms);
    EXPECT_DOUBLE_EQ(back.branches[i].p90_ms, p.branches[i].p90_ms);
    EXPECT_EQ(back.branches[i].kernel, "xnnpack");
    EXPECT_EQ(back.branches[i].runs, 200);
  }
  EXPECT_EQ(back.find("medium"), &back.branches[1]);
  EXPECT_EQ(back.find("none"), nullptr);

  const fs::path dir = testing::temp_path("profile_round_trip");
  fs::create_directories(dir);
  const std::string path = (dir / "device-profile.json").string();
  ASSERT_TRUE(write_device_profile(path, p).ok());
  ASSERT_TRUE(write_device_profile(path, p).ok());  // replaces
  DeviceLatencyProfile read;
  ASSERT_TRUE(read_device_profile(path, &read).ok());
  EXPECT_EQ(read.branches.size(), 3u);
  size_t files = 0;  // no temporary left next to it
  for (const auto& entry : fs::directory_iterator(dir)) files += entry.is_regular_file();
  EXPECT_EQ(files, 1u);
  EXPECT_EQ(default_device_profile_path("/b/x.bundle"), "/b/x.bundle/device-profile.json");
}

// From version 2 a profile of N threads times every branch on 1 to N threads; version 1 (every
// branch on all N, no counts) is still read.
TEST(DeviceProfileFile, ThreadCountsRoundTripAndAreChecked) {
  DeviceLatencyProfile p = sample_profile();
  p.threads = 3;
  for (BranchLatency& b : p.branches)
    b.by_threads = {{2, 0.8 * b.median_ms, 0.9 * b.median_ms}, {3, 0.7 * b.median_ms, b.p90_ms}};
  const std::string good = device_profile_to_text(p);
  DeviceLatencyProfile back;
  ASSERT_TRUE(parse_device_profile(good, "x", &back).ok());
  ASSERT_EQ(back.branches[2].by_threads.size(), 2u);
  EXPECT_EQ(back.branches[2].by_threads[1].threads, 3);
  EXPECT_DOUBLE_EQ(back.branches[2].by_threads[1].median_ms, 0.7 * 0.75);

  // the loop's costs take the profile's counts (the catalog's were measured elsewhere)
  std::vector<BranchCosts> costs(3);
  for (int i = 0; i < 3; ++i) {
    costs[i].name = kNames[i];
    costs[i].latency_by_threads = {{2, 99, 99}};
  }
  apply_device_profile(back, &costs);
  ASSERT_EQ(costs[1].latency_by_threads.size(), 2u);
  EXPECT_DOUBLE_EQ(costs[1].latency_by_threads[0].median_ms, 0.8 * 0.5);
  EXPECT_DOUBLE_EQ(*costs[1].latency_median_ms, 0.5);

  auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = nlohmann::json::parse(good);
    edit(j);
    return j.dump();
  };
  expect_refused(edited([](nlohmann::json& j) { j["branches"][1].erase("by_threads"); }),
                 ErrorCode::kFormat, "branch 'medium': 'by_threads' is missing");
  expect_refused(edited([](nlohmann::json& j) { j["threads"] = 4; }), ErrorCode::kFormat,
                 "'by_threads' must hold the counts 2 to 4, got 2 entries");
  expect_refused(
      edited([](nlohmann::json& j) { j["branches"][0]["by_threads"][1]["threads"] = 4; }),
      ErrorCode::kFormat, "by_threads[1]: 'threads' must be an integer in [3, 3]");
  expect_refused(
      edited([](nlohmann::json& j) { j["branches"][0]["by_threads"][0]["p90_ms"] = 0.01; }),
      ErrorCode::kFormat, "by_threads[0]: 'p90_ms' is below 'median_ms'");
  expect_refused(edited([](nlohmann::json& j) { j["branches"][0]["by_threads"] = 2; }),
                 ErrorCode::kFormat, "'by_threads' must be an array");
  expect_refused(edited([](nlohmann::json& j) { j["schema_version"] = 1; }), ErrorCode::kFormat,
                 "'by_threads' needs schema version 2");
  // a version-1 profile of 3 threads: read, without counts
  const std::string old = edited([](nlohmann::json& j) {
    j["schema_version"] = 1;
    for (auto& b : j["branches"]) b.erase("by_threads");
  });
  ASSERT_TRUE(parse_device_profile(old, "x", &back).ok());
  EXPECT_EQ(back.schema_version, 1);
  EXPECT_TRUE(back.branches[0].by_threads.empty());
  // its latencies are of all 3 threads: the loop does not choose threads and runs on the count
  // those latencies were timed on (0: the model's)
  for (BranchCosts& c : costs) c.latency_by_threads = {{2, 0.01, 0.01}};
  apply_device_profile(back, &costs);
  for (const LoopChoice& choice : loop_choices(costs, 3)) EXPECT_EQ(choice.threads, 0);
  EXPECT_EQ(loop_choices(costs, 3).size(), 3u);
}

TEST(DeviceProfileFile, HostileFilesAreRefusedNamingTheCulprit) {
  const std::string good = device_profile_to_text(sample_profile());
  expect_refused(good.substr(0, good.size() / 2), ErrorCode::kFormat, "not valid JSON");
  expect_refused("", ErrorCode::kFormat, "not valid JSON");
  expect_refused("[1, 2]", ErrorCode::kFormat, "not a JSON object");
  expect_refused(std::string(100, '[') + std::string(100, ']'), ErrorCode::kFormat,
                 "nested too deeply");
  expect_refused(std::string(kMaxDeviceProfileBytes + 1, ' '), ErrorCode::kFormat, "larger than");

  auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = nlohmann::json::parse(good);
    edit(j);
    return j.dump();
  };
  // NaN is no JSON number: a writer that had one wrote null or the bare word
  std::string nan_text = good;
  const size_t at = nan_text.find("0.25");
  ASSERT_NE(at, std::string::npos);
  nan_text.replace(at, 4, "NaN");
  expect_refused(nan_text, ErrorCode::kFormat, "not valid JSON");
  expect_refused(edited([](nlohmann::json& j) { j["branches"][0]["median_ms"] = nullptr; }),
                 ErrorCode::kFormat, "branch 'small': 'median_ms' must be a finite latency");
  expect_refused(edited([](nlohmann::json& j) { j["branches"][1]["median_ms"] = -1.0; }),
                 ErrorCode::kFormat, "branch 'medium': 'median_ms'");
  expect_refused(edited([](nlohmann::json& j) { j["branches"][1]["p90_ms"] = 0.1; }),
                 ErrorCode::kFormat, "branch 'medium': 'p90_ms' is below 'median_ms'");
  expect_refused(edited([](nlohmann::json& j) { j["branches"][2]["runs"] = 0; }),
                 ErrorCode::kFormat, "branch 'large': 'runs'");
  expect_refused(edited([](nlohmann::json& j) { j["branches"][2].erase("kernel"); }),
                 ErrorCode::kFormat, "branch 'large': 'kernel' is missing");
  expect_refused(edited([](nlohmann::json& j) { j["branches"][2]["name"] = "small"; }),
                 ErrorCode::kFormat, "branch 'small': listed twice");
  expect_refused(edited([](nlohmann::json& j) { j["branches"][0]["name"] = 7; }),
                 ErrorCode::kFormat, "branches[0]: 'name' must be a string");
  expect_refused(edited([](nlohmann::json& j) { j["threads"] = 0; }), ErrorCode::kFormat,
                 "'threads' must be an integer");
  expect_refused(edited([](nlohmann::json& j) { j["threads"] = 1.5; }), ErrorCode::kFormat,
                 "'threads'");
  expect_refused(edited([](nlohmann::json& j) { j["backend"] = "gpu"; }), ErrorCode::kFormat,
                 "'backend' must be xnnpack");
  expect_refused(edited([](nlohmann::json& j) { j["kind"] = "catalog"; }), ErrorCode::kFormat,
                 "'kind'");
  expect_refused(edited([](nlohmann::json& j) { j.erase("cpu"); }), ErrorCode::kFormat,
                 "'cpu' is missing");
  expect_refused(edited([](nlohmann::json& j) { j["schema_version"] = 3; }),
                 ErrorCode::kSchemaVersion, "schema version 3, this runtime reads 1 to 2");
  expect_refused(edited([](nlohmann::json& j) { j["cpu"] = std::string(5000, 'x'); }),
                 ErrorCode::kFormat, "'cpu' is longer than");
  // a huge array is refused by its count before any branch is read
  expect_refused(edited([](nlohmann::json& j) {
                   nlohmann::json many = nlohmann::json::array();
                   for (size_t i = 0; i <= catalog_json::kMaxBranches; ++i) many.push_back(0);
                   j["branches"] = many;
                 }),
                 ErrorCode::kFormat, "more than the limit");

  DeviceLatencyProfile p;
  const fs::path dir = testing::temp_path("profile_hostile");
  fs::create_directories(dir);
  EXPECT_EQ(read_device_profile((dir / "absent.json").string(), &p).code, ErrorCode::kNotFound);
  EXPECT_EQ(read_device_profile(dir.string(), &p).code, ErrorCode::kIo);
  write_text((dir / "cut.json").string(), good.substr(0, 40));
  const Status cut = read_device_profile((dir / "cut.json").string(), &p);
  EXPECT_EQ(cut.code, ErrorCode::kFormat);
  EXPECT_NE(cut.message.find("cut.json"), std::string::npos) << cut.message;
}

TEST(DeviceProfileFile, AProfileMustMatchTheBundleAndTheSession) {
  const DeviceLatencyProfile p = sample_profile();
  ProfileTarget target{{"small", "medium", "large"}, 1, "xnnpack", p.cpu};
  EXPECT_TRUE(check_device_profile(p, target).ok());
  auto refused = [&](ProfileTarget t, const std::string& needle) {
    const Status s = check_device_profile(p, t);
    EXPECT_EQ(s.code, ErrorCode::kInvalidArgument);
    EXPECT_NE(s.message.find(needle), std::string::npos) << s.message;
  };
  refused({{"small", "medium", "huge"}, 1, "xnnpack", p.cpu},
          "branch 'large' of the profile is not in this bundle");
  refused({{"small", "medium", "large", "extra"}, 1, "xnnpack", p.cpu},
          "branch 'extra' of the bundle is not in the profile");
  refused({{"small", "medium", "large"}, 2, "xnnpack", p.cpu}, "measured with 1 thread");
  refused({{"small", "medium", "large"}, 1, "reference", p.cpu}, "measured on the xnnpack");
  refused({{"small", "medium", "large"}, 1, "xnnpack", "another CPU"}, "this CPU is");

  std::vector<BranchCosts> costs(3);
  for (int i = 0; i < 3; ++i) {
    costs[static_cast<size_t>(i)].name = kNames[i];
    costs[static_cast<size_t>(i)].latency_median_ms = 100;
  }
  apply_device_profile(p, &costs);
  EXPECT_DOUBLE_EQ(*costs[1].latency_median_ms, 0.5);
  EXPECT_DOUBLE_EQ(*costs[1].latency_p90_ms, 0.6);
  EXPECT_NE(costs[1].latency_device->find("device profile"), std::string::npos);
}

TEST(DeviceProfileTiming, RoundsVisitEveryBranchInTurn) {
  std::vector<size_t> selected;
  size_t current = 0, calls = 0;
  std::vector<size_t> ran;
  std::vector<std::vector<double>> samples;
  CalibrationOptions o;
  o.runs = 7;
  o.rounds = 3;
  o.warmup = 2;
  const Status s = time_branches_interleaved(
      2, o,
      [&](size_t b) {
        selected.push_back(b);
        current = b;
        return ok_status();
      },
      [&] {
        ++calls;
        ran.push_back(current);
        return ok_status();
      },
      &samples);
  ASSERT_TRUE(s.ok()) << s.message;
  // warm-up of each, then three rounds of both
  EXPECT_EQ(selected, (std::vector<size_t>{0, 1, 0, 1, 0, 1, 0, 1}));
  EXPECT_EQ(calls, 2u * 2 + 2u * 7);
  // runs 7 in 3 rounds: 3, 2, 2
  EXPECT_EQ(ran, (std::vector<size_t>{0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1}));
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].size(), 7u);
  EXPECT_EQ(samples[1].size(), 7u);
  for (double ms : samples[0]) EXPECT_GE(ms, 0);

  // more rounds than runs: one run per round; a failing run stops with its status
  o.runs = 2;
  o.rounds = 9;
  o.warmup = 0;
  ASSERT_TRUE(time_branches_interleaved(
                  1, o, [](size_t) { return ok_status(); }, [] { return ok_status(); }, &samples)
                  .ok());
  EXPECT_EQ(samples[0].size(), 2u);
  const Status failed = time_branches_interleaved(
      1, o, [](size_t) { return ok_status(); },
      [] { return error_status(ErrorCode::kBackend, "boom"); }, &samples);
  EXPECT_EQ(failed.code, ErrorCode::kBackend);
  o.runs = 0;
  EXPECT_EQ(time_branches_interleaved(
                1, o, [](size_t) { return ok_status(); }, [] { return ok_status(); }, &samples)
                .code,
            ErrorCode::kInvalidArgument);
}

// An idle two-CPU machine: every contention factor is 1, so a prediction before any observation
// is the latency the loop starts from.
class CalibrationCApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fixture_.write("proc/stat",
                   "cpu  100 0 100 1000 0 0 0 0 0 0\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n"
                   "procs_running 1\n");
    fixture_.write("proc/meminfo", "MemTotal: 8000000 kB\nMemAvailable: 6000000 kB\n");
  }
  void TearDown() override {
    if (rt_) adascale_close(rt_);
  }
  void open(const std::string& bundle, int threads = 1) {
    if (rt_) adascale_close(rt_);
    rt_ = nullptr;
    char message[256] = {0};
    ASSERT_EQ(adascale_open_ex(bundle.c_str(), ADASCALE_BACKEND_XNNPACK, threads, &rt_, message,
                               sizeof(message)),
              ADASCALE_OK)
        << message;
    adascale_adapt_options options;
    adascale_adapt_options_init(&options);
    const std::string root = fixture_.root();
    options.context_root = root.c_str();
    options.probe_period_ms = 0;
    ASSERT_EQ(adascale_adapt_configure(rt_, &options), ADASCALE_OK);
  }
  // the loop's latency prediction of every branch after one step
  std::vector<double> predictions() {
    EXPECT_EQ(adascale_adapt_step(rt_), ADASCALE_OK);
    std::vector<double> out;
    for (size_t i = 0; i < 3; ++i) {
      double latency = NAN;
      EXPECT_EQ(adascale_adapt_estimate(rt_, i, &latency, nullptr, nullptr), ADASCALE_OK);
      out.push_back(latency);
    }
    return out;
  }
  std::string source() const { return adascale_latency_source(rt_); }

  adascale_runtime* rt_ = nullptr;
  FixtureRoot fixture_{"calibration"};
};

TEST_F(CalibrationCApiTest, CalibrateMeasuresEveryBranchAndWritesTheProfile) {
  const std::string bundle = write_bundle("calibrate", {1, 2, 4});
  open(bundle);
  EXPECT_EQ(source(), std::string("catalog (export host: ") + kExportHost + ")");
  ASSERT_EQ(adascale_select(rt_, "medium"), ADASCALE_OK);
  EXPECT_EQ(adascale_calibrate(rt_, -1, 0, nullptr), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_calibrate(rt_, 5, 6, nullptr), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(adascale_last_error(rt_), "rounds"), nullptr);
  ASSERT_EQ(adascale_calibrate(rt_, 12, 4, nullptr), ADASCALE_OK) << adascale_last_error(rt_);

  const std::string path = default_device_profile_path(bundle);
  DeviceLatencyProfile p;
  ASSERT_TRUE(read_device_profile(path, &p).ok());
  EXPECT_EQ(p.cpu, describe_cpu());
  EXPECT_EQ(p.threads, 1);
  EXPECT_EQ(p.backend, "xnnpack");
  EXPECT_EQ(p.batch, 1);
  EXPECT_EQ(p.rounds, 4);
  ASSERT_EQ(p.branches.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(p.branches[i].name, kNames[i]);
    EXPECT_GT(p.branches[i].median_ms, 0);
    EXPECT_GE(p.branches[i].p90_ms, p.branches[i].median_ms);
    EXPECT_EQ(p.branches[i].runs, 12);
    EXPECT_EQ(p.branches[i].kernel, "xnnpack");  // fp32 branches
  }
  EXPECT_EQ(source().rfind("device profile " + path + " (", 0), 0u) << source();
  // calibration ran on a session of its own: the selection is the caller's
  std::vector<float> image(3 * 8 * 8, 0.5f), logits(5);
  EXPECT_EQ(adascale_run(rt_, image.data(), image.size(), logits.data(), 5), ADASCALE_OK);
  EXPECT_EQ(adascale_is_cached(rt_, "medium"), 1);
  EXPECT_EQ(adascale_is_cached(rt_, "large"), 0);

  // the loop predicts the measured medians (idle context, no observation yet)
  const std::vector<double> predicted = predictions();
  for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(predicted[i], p.branches[i].median_ms);

  // elsewhere: --out
  const std::string other = testing::temp_path("calibrate_elsewhere.json");
  ASSERT_EQ(adascale_calibrate(rt_, 3, 1, other.c_str()), ADASCALE_OK);
  EXPECT_TRUE(fs::exists(other));
  EXPECT_EQ(source().rfind("device profile " + other, 0), 0u) << source();
  // a folder that does not exist: an I/O error naming it
  EXPECT_EQ(adascale_calibrate(rt_, 3, 1, "/nonexistent-folder/p.json"), ADASCALE_ERROR_IO);
  EXPECT_NE(std::strstr(adascale_last_error(rt_), "/nonexistent-folder"), nullptr);
}

// The fixture: the catalog says every branch takes twice what it measures on this device. Before
// calibration the loop predicts from the catalog, so an observation at the measured latency is
// off by 100%; with the profile the prediction is the measured median and the same observation is
// off by nothing. The observations are fed, not timed, so the numbers are exact.
TEST_F(CalibrationCApiTest, AProfileReplacesACatalogTwiceTooSlow) {
  const std::string measured_bundle = write_bundle("measured", {1, 1, 1});
  open(measured_bundle);
  ASSERT_EQ(adascale_calibrate(rt_, 8, 2, nullptr), ADASCALE_OK) << adascale_last_error(rt_);
  DeviceLatencyProfile measured;
  ASSERT_TRUE(read_device_profile(default_device_profile_path(measured_bundle), &measured).ok());
  std::vector<double> doubled;
  for (const BranchLatency& b : measured.branches) doubled.push_back(2 * b.median_ms);
  const std::string bundle = write_bundle("doubled", doubled);
  const std::string profile = testing::temp_path("doubled-profile.json");
  ASSERT_TRUE(write_device_profile(profile, measured).ok());

  open(bundle);
  EXPECT_EQ(source().rfind("catalog (export host: ", 0), 0u) << source();
  std::vector<double> predicted = predictions();
  for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(predicted[i], doubled[i]);
  // a reported latency is judged at the next step, against the prediction it was made under
  ASSERT_EQ(adascale_adapt_report_latency(rt_, 0, measured.branches[0].median_ms), ADASCALE_OK);
  ASSERT_EQ(adascale_adapt_step(rt_), ADASCALE_OK);
  adascale_adapt_stats stats;
  ASSERT_EQ(adascale_adapt_get_stats(rt_, &stats), ADASCALE_OK);
  EXPECT_NEAR(stats.median_error_uncorrected, 1.0, 1e-9);

  ASSERT_EQ(adascale_use_device_profile(rt_, profile.c_str()), ADASCALE_OK)
      << adascale_last_error(rt_);
  EXPECT_EQ(source().rfind("device profile " + profile + " (" + measured.cpu, 0), 0u) << source();
  predicted = predictions();  // a new loop: no correction learnt yet
  for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(predicted[i], measured.branches[i].median_ms);
  ASSERT_EQ(adascale_adapt_report_latency(rt_, 0, measured.branches[0].median_ms), ADASCALE_OK);
  ASSERT_EQ(adascale_adapt_step(rt_), ADASCALE_OK);
  ASSERT_EQ(adascale_adapt_get_stats(rt_, &stats), ADASCALE_OK);
  EXPECT_EQ(stats.error_count, 1u);
  EXPECT_NEAR(stats.median_error_uncorrected, 0.0, 1e-9);

  // real runs are fed back too (their error depends on this machine: not asserted)
  std::vector<float> image(3 * 8 * 8, 0.5f), logits(5);
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(adascale_run_auto(rt_, image.data(), image.size(), logits.data(), 5), ADASCALE_OK);
  ASSERT_EQ(adascale_adapt_step(rt_), ADASCALE_OK);
  ASSERT_EQ(adascale_adapt_get_stats(rt_, &stats), ADASCALE_OK);
  EXPECT_EQ(stats.observations, 6u);

  // back to the catalog
  ASSERT_EQ(adascale_use_device_profile(rt_, nullptr), ADASCALE_OK);
  EXPECT_EQ(source().rfind("catalog (", 0), 0u);
  predicted = predictions();
  for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(predicted[i], doubled[i]);
}

TEST_F(CalibrationCApiTest, TheBundlesProfileIsUsedWhenItMatches) {
  const std::string bundle = write_bundle("default", {1, 2, 4});
  ASSERT_TRUE(write_device_profile(default_device_profile_path(bundle), sample_profile()).ok());
  open(bundle);
  EXPECT_EQ(source().rfind("device profile " + default_device_profile_path(bundle), 0), 0u)
      << source();
  const std::vector<double> predicted = predictions();
  EXPECT_DOUBLE_EQ(predicted[0], 0.25);
  EXPECT_DOUBLE_EQ(predicted[2], 0.75);

  // sessions of a model start from the model's profile
  adascale_model* model = nullptr;
  ASSERT_EQ(adascale_model_open(bundle.c_str(), ADASCALE_BACKEND_XNNPACK, 1, &model), ADASCALE_OK);
  adascale_session* session = nullptr;
  ASSERT_EQ(adascale_session_new(model, &session), ADASCALE_OK);
  EXPECT_EQ(std::string(adascale_session_latency_source(session)), source());
  adascale_session_free(session);
  adascale_model_free(model);

  // other threads than measured: not used, and said so
  open(bundle, 2);
  EXPECT_NE(source().find("not used: measured with 1 thread(s), this session runs 2"),
            std::string::npos)
      << source();
  EXPECT_EQ(source().rfind("catalog (export host: ", 0), 0u);
  EXPECT_DOUBLE_EQ(predictions()[0], 1.0);
}

TEST_F(CalibrationCApiTest, AProfileOfAnotherBundleIsRefusedByName) {
  const std::string bundle = write_bundle("foreign", {1, 2, 4});
  DeviceLatencyProfile foreign = sample_profile();
  foreign.branches[1].name = "w0.50";
  ASSERT_TRUE(write_device_profile(default_device_profile_path(bundle), foreign).ok());
  open(bundle);  // the bundle still opens: a stale profile must not make it unusable
  EXPECT_NE(source().find("device profile " + default_device_profile_path(bundle) +
                          " not used: branch 'w0.50' of the profile is not in this bundle"),
            std::string::npos)
      << source();
  EXPECT_DOUBLE_EQ(predictions()[1], 2.0);

  const std::string foreign_path = testing::temp_path("foreign-profile.json");
  ASSERT_TRUE(write_device_profile(foreign_path, foreign).ok());
  const std::string before = source();
  EXPECT_EQ(adascale_use_device_profile(rt_, foreign_path.c_str()),
            ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(adascale_last_error(rt_), "'w0.50'"), nullptr) << adascale_last_error(rt_);
  EXPECT_EQ(source(), before);  // unchanged
  const std::string broken = testing::temp_path("broken-profile.json");
  write_text(broken, "{\"kind\": \"adascale-device-profile\", \"schema_version\": 1,");
  EXPECT_EQ(adascale_use_device_profile(rt_, broken.c_str()), ADASCALE_ERROR_FORMAT);
  EXPECT_NE(std::strstr(adascale_last_error(rt_), "broken-profile.json"), nullptr);
  EXPECT_EQ(adascale_use_device_profile(rt_, ""), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_use_device_profile(nullptr, nullptr), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(adascale_latency_source(nullptr), "null handle");

  // not while the loop runs
  const std::string good = testing::temp_path("good-profile.json");
  ASSERT_TRUE(write_device_profile(good, sample_profile()).ok());
  ASSERT_EQ(adascale_adapt_start(rt_), ADASCALE_OK);
  EXPECT_EQ(adascale_use_device_profile(rt_, good.c_str()), ADASCALE_ERROR_UNSUPPORTED);
  EXPECT_EQ(adascale_calibrate(rt_, 2, 1, good.c_str()), ADASCALE_ERROR_UNSUPPORTED);
  ASSERT_EQ(adascale_adapt_stop(rt_), ADASCALE_OK);
  EXPECT_EQ(adascale_use_device_profile(rt_, good.c_str()), ADASCALE_OK);
}

#ifdef ADASCALE_RUN_CLI
using CliResult = testing::CommandResult;

CliResult run_cli(const std::string& args) {
  return testing::run_command(std::string(ADASCALE_RUN_CLI) + " " + args);
}

bool contains(const CliResult& r, const std::string& needle) {
  return r.output.find(needle) != std::string::npos;
}

TEST(CalibrateCli, WritesTheProfileAndSaysWhichLatenciesTheLoopUses) {
  const std::string bundle = write_bundle("cli", {1, 2, 4});
  const std::string profile = default_device_profile_path(bundle);
  CliResult r = run_cli("--bundle " + bundle + " --list");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r, std::string("latencies   catalog (export host: ") + kExportHost))
      << r.output;

  r = run_cli("--bundle " + bundle + " --calibrate --runs 6 --rounds 3");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r, "measured ms")) << r.output;
  for (const char* name : kNames) EXPECT_TRUE(contains(r, std::string("\n") + name + " ")) << name;
  EXPECT_TRUE(contains(r, "wrote       " + profile)) << r.output;
  EXPECT_TRUE(contains(r, "latencies   device profile " + profile)) << r.output;
  DeviceLatencyProfile p;
  ASSERT_TRUE(read_device_profile(profile, &p).ok());
  EXPECT_EQ(p.branches[0].runs, 6);
  EXPECT_EQ(p.rounds, 3);

  r = run_cli("--bundle " + bundle + " --list");
  EXPECT_TRUE(contains(r, "latencies   device profile " + profile)) << r.output;
  r = run_cli("--bundle " + bundle + " --list --device-profile none");
  EXPECT_TRUE(contains(r, "latencies   catalog (")) << r.output;
  // another thread count than measured: the bundle's profile is not used, and that is said
  r = run_cli("--bundle " + bundle + " --list --threads 2");
  EXPECT_TRUE(contains(r, "not used: measured with 1 thread(s), this session runs 2")) << r.output;

  const std::string elsewhere = testing::temp_path("cli-profile.json");
  r = run_cli("--bundle " + bundle + " --calibrate --runs 2 --rounds 1 --out " + elsewhere);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r, "wrote       " + elsewhere)) << r.output;

  // on three threads: every branch on 1, 2 and 3, each count against one thread's
  const std::string threaded = testing::temp_path("cli-profile-3t.json");
  r = run_cli("--bundle " + bundle + " --calibrate --runs 2 --rounds 1 --threads 3 --out " +
              threaded);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r, "  2 threads ")) << r.output;
  EXPECT_TRUE(contains(r, "  3 threads ")) << r.output;
  ASSERT_TRUE(read_device_profile(threaded, &p).ok());
  EXPECT_EQ(p.threads, 3);
  ASSERT_EQ(p.branches[1].by_threads.size(), 2u);
  EXPECT_EQ(p.branches[1].by_threads[1].threads, 3);
  EXPECT_EQ(p.branches[1].runs, 2);

  DeviceLatencyProfile foreign = sample_profile();
  foreign.branches[2].name = "w1.00";
  const std::string foreign_path = testing::temp_path("cli-foreign.json");
  ASSERT_TRUE(write_device_profile(foreign_path, foreign).ok());
  r = run_cli("--bundle " + bundle + " --list --device-profile " + foreign_path);
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r, "branch 'w1.00' of the profile is not in this bundle")) << r.output;
}

TEST(CalibrateCli, OptionsOfOtherModesAreUsageErrors) {
  const std::string bundle = write_bundle("cli_usage", {1, 2, 4});
  EXPECT_EQ(run_cli("--bundle " + bundle + " --calibrate --idx x").code, 2);
  EXPECT_EQ(run_cli("--bundle " + bundle + " --calibrate --branch small").code, 2);
  EXPECT_EQ(run_cli("--bundle " + bundle + " --calibrate --runs 4 --rounds 5").code, 2);
  EXPECT_EQ(run_cli("--bundle " + bundle + " --runs 4 --list").code, 2);
  EXPECT_EQ(run_cli("--bundle " + bundle + " --out x.json --list").code, 2);
  EXPECT_EQ(run_cli("--bundle " + bundle + " --device-profile none --profile 3").code, 2);
}
#endif  // ADASCALE_RUN_CLI

}  // namespace
}  // namespace adascale
