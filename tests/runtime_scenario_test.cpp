// Contention scenarios: the scenario file parser, the burner and balloon processes (started,
// killed, reaped, never left behind), and adascale-run --scenario end to end on a generated
// bundle, including an interrupted run and two apps side by side.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/command_result.h"
#include "tests/runtime_test_util.h"
#include "tools/scenario/contention.h"
#include "tools/scenario/scenario.h"
#include "tools/scenario/scenario_run.h"
#include "tools/scenario/summary_tables.h"
#include "tools/scenario/trace_rows.h"
#include "tools/scenario/trace_svg.h"

namespace adascale {
namespace {

namespace fs = std::filesystem;
using scenario::ContentionProcesses;
using scenario::EventKind;
using scenario::parse_scenario;
using scenario::Scenario;
using scenario::ScenarioError;
using testing::make_node;
using testing::random_floats;
using testing::temp_path;

// The message of the ScenarioError that parsing `text` throws ("" when it parses).
std::string parse_error(const std::string& text, const std::string& path = "s.ini") {
  try {
    parse_scenario(text, path);
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "";
}

constexpr const char* kGood = R"(# a comment
[scenario]
name = demo
duration_s = 10
frame_images = 8   # per request
settle_s = 0.5
calibration_s = 0.2

[adaptation]
period_ms = 25
min_dwell_ms = 300

[budgets]
latency_ms = 4
memory_mode = available_minus_margin
memory_mib = 64
energy_mj = inf

[timeline]
1 = burners_start 2
2.5 = balloon_alloc 16
2.5 = budget latency_ms=3 memory_mode=absolute memory_mib=0.5
4 = burners_stop 1
6 = balloon_release
7 = burners_stop 1
)";

TEST(ScenarioParse, GoodFile) {
  const Scenario s = parse_scenario(kGood, "s.ini");
  EXPECT_EQ(s.name, "demo");
  EXPECT_DOUBLE_EQ(s.duration_s, 10);
  EXPECT_EQ(s.frame_images, 8);
  EXPECT_DOUBLE_EQ(s.settle_s, 0.5);
  EXPECT_DOUBLE_EQ(s.calibration_s, 0.2);
  EXPECT_DOUBLE_EQ(s.adaptation.monitor.period_ms, 25);
  EXPECT_DOUBLE_EQ(s.adaptation.selector.min_dwell_ms, 300);
  EXPECT_DOUBLE_EQ(s.adaptation.monitor.probe_period_ms, 1000);  // default kept
  EXPECT_DOUBLE_EQ(s.budgets.latency_ms, 4);
  EXPECT_EQ(s.budgets.memory_mode, MemoryBudgetMode::kAvailableMinusMargin);
  EXPECT_DOUBLE_EQ(s.budgets.memory_mib, 64);
  EXPECT_TRUE(std::isinf(s.budgets.energy_mj));

  ASSERT_EQ(s.events.size(), 6u);
  EXPECT_EQ(s.events[0].kind, EventKind::kStartBurners);
  EXPECT_EQ(s.events[0].count, 2);
  EXPECT_EQ(s.events[0].line, 20);
  EXPECT_EQ(s.events[1].kind, EventKind::kAllocateBalloon);
  EXPECT_DOUBLE_EQ(s.events[1].mib, 16);
  EXPECT_EQ(s.events[2].kind, EventKind::kBudget);  // same time: file order kept
  EXPECT_DOUBLE_EQ(*s.events[2].budget.latency_ms, 3);
  EXPECT_EQ(*s.events[2].budget.memory_mode, MemoryBudgetMode::kAbsolute);
  EXPECT_FALSE(s.events[2].budget.energy_mj);
  EXPECT_EQ(s.events[4].kind, EventKind::kReleaseBalloon);
  EXPECT_EQ(s.events[5].text, "burners_stop 1");

  // Per-image budgets for the loop: latency and energy divided by the frame.
  const Budgets b = scenario::per_image_budgets(s.budgets, s.frame_images);
  EXPECT_DOUBLE_EQ(b.latency_ms, 0.5);
  EXPECT_DOUBLE_EQ(b.memory_bytes, 64.0 * 1024 * 1024);

  const std::vector<scenario::Segment> segs = scenario::segments(s);
  ASSERT_EQ(segs.size(), 6u);
  EXPECT_EQ(segs[0].burners, 0);
  EXPECT_DOUBLE_EQ(segs[1].begin_s, 1);
  EXPECT_EQ(segs[1].burners, 2);
  EXPECT_DOUBLE_EQ(segs[2].begin_s, 2.5);
  EXPECT_DOUBLE_EQ(segs[2].balloon_mib, 16);
  EXPECT_DOUBLE_EQ(segs[2].budgets.latency_ms, 3);
  EXPECT_EQ(segs[3].burners, 1);
  EXPECT_DOUBLE_EQ(segs[4].balloon_mib, 0);
  EXPECT_EQ(segs[5].burners, 0);
  EXPECT_DOUBLE_EQ(segs[5].end_s, 10);

  // A stricter budget is a contention step; a looser one is not.
  scenario::RequestBudgets loose = s.budgets, strict = s.budgets;
  strict.latency_ms = 2;
  EXPECT_TRUE(scenario::tightens(loose, strict));
  EXPECT_FALSE(scenario::tightens(strict, loose));
}

TEST(ScenarioParse, ShippedScenariosLoad) {
  int files = 0;
  for (const auto& entry :
       fs::directory_iterator(fs::path(ADASCALE_SOURCE_DIR) / "configs" / "scenarios")) {
    const Scenario s = scenario::load_scenario(entry.path().string());
    EXPECT_GT(s.duration_s, 0) << entry.path();
    ++files;
  }
  EXPECT_GE(files, 3);
}

TEST(ScenarioParse, DefaultsAndNameFromThePath) {
  const Scenario s = parse_scenario("[scenario]\nduration_s = 2\n", "dir/quiet.ini");
  EXPECT_EQ(s.name, "quiet");
  EXPECT_EQ(s.frame_images, 1);
  EXPECT_TRUE(std::isinf(s.budgets.latency_ms));
  EXPECT_TRUE(s.events.empty());
  ASSERT_EQ(scenario::segments(s).size(), 1u);
  // the loop's own defaults, except the replayer's period and tail-latency budgets
  EXPECT_DOUBLE_EQ(s.adaptation.monitor.period_ms, 50);
  EXPECT_TRUE(s.adaptation.selector.tail_latency);
  EXPECT_DOUBLE_EQ(s.adaptation.selector.objective_tolerance,
                   SelectorOptions{}.objective_tolerance);
  const Scenario tuned = parse_scenario(
      "[scenario]\nduration_s = 2\n[adaptation]\nobjective_tolerance = 0.001\n"
      "contended_tail_prior = 1.2\ncontext_change = 0\nsteady_contended_tail = false\n"
      "sustained_runnable = false\nperiod_jitter = 0\n",
      "t.ini");
  EXPECT_DOUBLE_EQ(tuned.adaptation.selector.objective_tolerance, 0.001);
  EXPECT_DOUBLE_EQ(tuned.adaptation.device.contended_tail_prior, 1.2);
  EXPECT_DOUBLE_EQ(tuned.adaptation.selector.context_change, 0);
  EXPECT_TRUE(s.adaptation.device.steady_contended_tail);
  EXPECT_FALSE(tuned.adaptation.device.steady_contended_tail);
  EXPECT_TRUE(s.adaptation.device.sustained_runnable);
  EXPECT_FALSE(tuned.adaptation.device.sustained_runnable);
  EXPECT_DOUBLE_EQ(s.adaptation.period_jitter, AdaptationOptions{}.period_jitter);
  EXPECT_GT(s.adaptation.period_jitter, 0);
  EXPECT_DOUBLE_EQ(tuned.adaptation.period_jitter, 0);
  EXPECT_NE(parse_error("[scenario]\nduration_s = 2\n[adaptation]\nperiod_jitter = 0.8\n")
                .find("key 'period_jitter'"),
            std::string::npos);
  EXPECT_NE(parse_error("[scenario]\nduration_s = 2\n[adaptation]\ncontext_change = 0.9\n")
                .find("key 'context_change'"),
            std::string::npos);
  EXPECT_NE(parse_error("[scenario]\nduration_s = 2\n[adaptation]\ncontended_tail_prior = 0.5\n")
                .find("key 'contended_tail_prior'"),
            std::string::npos);
}

TEST(ScenarioParse, UnknownKeyOrSectionNamesFileLineAndKey) {
  EXPECT_EQ(parse_error("[scenario]\nduration_s = 2\nfrane_images = 4\n"),
            "s.ini:3: key 'frane_images': unknown key in [scenario] (name, duration_s, "
            "frame_images, settle_s, calibration_s, calibration_interleaved, "
            "calibration_refine_requests, violation_target_pct)");
  EXPECT_NE(parse_error("[scenario]\nduration_s = 2\n[budget]\n").find("s.ini:3: unknown section"),
            std::string::npos);
  EXPECT_NE(parse_error("[scenario]\nduration_s = 2\n[budgets]\nlatency = 3\n")
                .find("s.ini:4: key 'latency': unknown budget key"),
            std::string::npos);
  EXPECT_NE(parse_error("duration_s = 2\n").find("s.ini:1: key 'duration_s': outside any section"),
            std::string::npos);
  EXPECT_NE(parse_error("[scenario]\nduration_s = 2\nduration_s = 3\n").find("s.ini:3:"),
            std::string::npos);
  EXPECT_NE(parse_error("[scenario]\nname = x\n").find("key 'duration_s': is required"),
            std::string::npos);
}

TEST(ScenarioParse, BadValues) {
  const std::string head = "[scenario]\nduration_s = 5\n";
  EXPECT_EQ(parse_error("[scenario]\nduration_s = five\n"),
            "s.ini:2: key 'duration_s': expected a number >= 0.1 and <= 3600, got 'five'");
  EXPECT_NE(parse_error(head + "frame_images = 2.5\n").find("s.ini:3: key 'frame_images'"),
            std::string::npos);
  EXPECT_NE(parse_error(head + "[budgets]\nlatency_ms = -1\n").find("s.ini:4: key 'latency_ms'"),
            std::string::npos);
  EXPECT_NE(parse_error(head + "[budgets]\nmemory_mode = lots\n").find("key 'memory_mode'"),
            std::string::npos);
  EXPECT_NE(parse_error(head + "[budgets]\nmemory_mode = absolute\n").find("memory_mib > 0"),
            std::string::npos);
  EXPECT_NE(parse_error(head + "[adaptation]\nentry_margin = 1\n").find("key 'entry_margin'"),
            std::string::npos);
}

TEST(ScenarioParse, BadTimesAndActions) {
  const std::string head = "[scenario]\nduration_s = 5\n[timeline]\n";
  EXPECT_EQ(parse_error(head + "soon = burners_start 1\n"),
            "s.ini:4: key 'soon': expected a number >= 0, got 'soon'");
  EXPECT_NE(parse_error(head + "-1 = burners_start 1\n").find("s.ini:4: key '-1'"),
            std::string::npos);
  EXPECT_NE(parse_error(head + "5 = burners_start 1\n").find("not before the end"),
            std::string::npos);
  EXPECT_NE(parse_error(head + "1 = burners_start\n").find("expected 'burners_start N'"),
            std::string::npos);
  EXPECT_NE(parse_error(head + "1 = burners_start 0\n").find("s.ini:4: key '1'"),
            std::string::npos);
  EXPECT_NE(parse_error(head + "1 = dance 3\n").find("unknown action 'dance'"), std::string::npos);
  EXPECT_NE(parse_error(head + "1 = balloon_alloc -4\n").find("s.ini:4:"), std::string::npos);
  EXPECT_NE(parse_error(head + "1 = budget latency_ms\n").find("KEY=VALUE"), std::string::npos);
  EXPECT_NE(parse_error(head + "1 = budget speed=3\n").find("key 'speed': unknown budget key"),
            std::string::npos);
}

TEST(ScenarioParse, EventOrderAndImpossibleTimelines) {
  const std::string head = "[scenario]\nduration_s = 5\n[timeline]\n";
  EXPECT_EQ(parse_error(head + "1 = burners_start 1\n3 = burners_stop 1\n2 = burners_start 1\n"),
            "s.ini:6: key '2': events must be in time order (this one comes after t=3.000000 s)");
  EXPECT_EQ(parse_error(head + "1 = burners_start 1\n1 = burners_stop 1\n"), "");
  EXPECT_NE(parse_error(head + "1 = burners_start 1\n2 = burners_stop 2\n")
                .find("s.ini:5: key 'burners_stop': stops 2 burners but only 1 run"),
            std::string::npos);
  EXPECT_NE(parse_error(head + "1 = balloon_release\n").find("s.ini:4: key 'balloon_release'"),
            std::string::npos);
}

TEST(ScenarioParse, LimitsBoundWhatAScenarioMayAskFor) {
  // A day of timeline reserved gigabytes for its requests; the limit is checked while parsing.
  EXPECT_EQ(parse_error("[scenario]\nduration_s = 86400\n"),
            "s.ini:2: key 'duration_s': expected a number >= 0.1 and <= 3600, got '86400'");
  EXPECT_EQ(parse_error("[scenario]\nduration_s = 1e-300\n"),
            "s.ini:2: key 'duration_s': expected a number >= 0.1 and <= 3600, got '1e-300'");
  EXPECT_EQ(parse_error("[scenario]\nduration_s = 3600\n"), "");
  const std::string head = "[scenario]\nduration_s = 5\n";
  EXPECT_EQ(parse_error(head + "settle_s = 3600\n"),
            "s.ini:3: key 'settle_s': expected a number >= 0 and <= 600, got '3600'");
  EXPECT_EQ(parse_error(head + "calibration_s = 61\n"),
            "s.ini:3: key 'calibration_s': expected a number > 0 and <= 60, got '61'");
  EXPECT_EQ(parse_error(head + "frame_images = 65537\n"),
            "s.ini:3: key 'frame_images': expected an integer within 1..65536, got '65537'");
  EXPECT_EQ(parse_error(head + "[adaptation]\nperiod_ms = 0.001\n"),
            "s.ini:4: key 'period_ms': expected a number >= 10 and <= 60000, got '0.001'");
  EXPECT_EQ(parse_error(head + "[budgets]\nlatency_ms = 1e-20\n"),
            "s.ini:4: key 'latency_ms': expected a number >= 0.001 (or inf), got '1e-20'");
  EXPECT_EQ(parse_error(head + "[budgets]\nmemory_mib = 2e6\n"),
            "s.ini:4: key 'memory_mib': expected a number >= 0 and <= 1048576, got '2e6'");
  const std::string timeline = head + "[timeline]\n";
  EXPECT_EQ(parse_error(timeline + "1 = balloon_alloc 70000\n"),
            "s.ini:4: key '1': expected a number > 0 and <= 65536, got '70000'");
  EXPECT_EQ(parse_error(timeline + "1 = balloon_alloc 40000\n2 = balloon_alloc 40000\n"),
            "s.ini:5: key 'balloon_alloc': balloons would hold 80000 MiB at once, more than "
            "65536");
  std::string many_balloons = timeline;
  for (int i = 0; i < 17; ++i) many_balloons += "1 = balloon_alloc 1\n";
  EXPECT_EQ(parse_error(many_balloons),
            "s.ini:20: key 'balloon_alloc': more than 16 balloons at once");
  EXPECT_NE(parse_error(timeline + "1 = burners_start 200\n2 = burners_start 57\n")
                .find("s.ini:5: key 'burners_start': more than 256 burners at once"),
            std::string::npos);
  std::string many_events = timeline;
  for (int i = 0; i < 1001; ++i) many_events += "1 = budget latency_ms=3\n";
  EXPECT_EQ(parse_error(many_events), "s.ini:1004: key '1': more than 1000 events in [timeline]");
}

TEST(ScenarioParse, NameIsOneFileNameCheckedWhileParsing) {
  for (const std::string& bad :
       {std::string("../x"), std::string("a/b"), std::string("."), std::string(".."),
        std::string("/tmp/x"), std::string("a b"), std::string("x\\y"), std::string("caf\xc3\xa9"),
        std::string(65, 'n')}) {
    const std::string error = parse_error("[scenario]\nname = " + bad + "\nduration_s = 2\n");
    EXPECT_EQ(error.rfind("s.ini:2: key 'name': expected 1 to 64 characters of A-Z a-z 0-9 . _ - "
                          "(one file name, not . or ..), got '",
                          0),
              0u)
        << bad << ": " << error;
  }
  EXPECT_EQ(parse_scenario("[scenario]\nname = run-1_v2.0\nduration_s = 2\n", "s.ini").name,
            "run-1_v2.0");
  EXPECT_EQ(
      parse_scenario("[scenario]\nname = " + std::string(64, 'n') + "\nduration_s = 2\n", "s.ini")
          .name,
      std::string(64, 'n'));
  // The default, from the file name: other characters become '_'.
  EXPECT_EQ(parse_scenario("[scenario]\nduration_s = 2\n", "dir/my scenario (v2).ini").name,
            "my_scenario__v2_");
  EXPECT_EQ(parse_error("[scenario]\nduration_s = 2\n", "dir/..ini"),
            "dir/..ini: key 'name': cannot be derived from the file name '.'; set it");
}

TEST(ScenarioParse, HostileValuesAndLinesAreOneLineErrors) {
  for (const char* value : {"nan", "inf", "-inf", "-1", "1e999", "0x", ""}) {
    const std::string error = parse_error(std::string("[scenario]\nduration_s = ") + value + "\n");
    EXPECT_EQ(error.rfind("s.ini:2: key 'duration_s': ", 0), 0u) << value << ": " << error;
  }
  const std::string head = "[scenario]\nduration_s = 5\n";
  for (const char* value : {"nan", "-inf", "-1", "0"})
    EXPECT_EQ(parse_error(head + "[budgets]\nlatency_ms = " + value + "\n")
                  .rfind("s.ini:4: key 'latency_ms': expected a number", 0),
              0u)
        << value;
  const std::string timeline = head + "[timeline]\n";
  for (const char* event :
       {"nan = burners_start 1", "inf = burners_start 1", "1 = burners_start -1",
        "1 = burners_start nan", "1 = balloon_alloc inf", "1 = budget energy_mj=nan"})
    EXPECT_EQ(parse_error(timeline + event + "\n").rfind("s.ini:4: key '", 0), 0u) << event;
  EXPECT_EQ(parse_error(timeline + "1 = budget latency_ms=3 latency_ms=4\n"),
            "s.ini:4: key 'latency_ms': given twice in one budget event");
  EXPECT_EQ(parse_error(head + "[budgets]\n[scenario]\n"),
            "s.ini:4: section [scenario] appears twice");
  // A line past the limit, even a comment, and control characters (NUL cut values short).
  EXPECT_EQ(parse_error(head + std::string(5000, '#') + "\n"),
            "s.ini:3: line of 5000 characters, more than 4096");
  const char nul[] = "[scenario]\nduration_s = 2\0 junk\n";
  EXPECT_EQ(parse_error(std::string(nul, sizeof(nul) - 1)),
            "s.ini:2: control character 0x00 at column 15");
  EXPECT_EQ(parse_error("[scenario]\nname = a\x1b[2Jb\nduration_s = 2\n"),
            "s.ini:2: control character 0x1b at column 9");
  // Long keys and values are shortened in the message, which stays one line.
  const std::string error = parse_error(head + std::string(3000, 'k') + " = 1\n");
  EXPECT_EQ(error.rfind("s.ini:3: key '" + std::string(80, 'k') + "...': unknown key", 0), 0u);
  EXPECT_LT(error.size(), 400u);
  EXPECT_EQ(error.find('\n'), std::string::npos);
  // Windows line ends still parse.
  EXPECT_EQ(parse_error("[scenario]\r\nduration_s = 2\r\n"), "");
}

TEST(ScenarioParse, LoadRefusesAFileLargerThanTheLimit) {
  std::string text = "[scenario]\nduration_s = 2\n";
  while (text.size() <= scenario::kMaxFileBytes) text += "# padding padding padding padding\n";
  const std::string path = temp_path("huge.ini");
  std::ofstream(path, std::ios::binary) << text;
  try {
    scenario::load_scenario(path);
    ADD_FAILURE() << "a file past the limit loaded";
  } catch (const ScenarioError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": larger than 1048576 bytes, not a scenario file");
  }
  text.resize(1000);
  text.resize(text.rfind('\n') + 1);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  EXPECT_DOUBLE_EQ(scenario::load_scenario(path).duration_s, 2);
}

// --- processes -------------------------------------------------------------------------------

// State letter of /proc/PID/stat, 0 when the process does not exist.
char process_state(pid_t pid, pid_t* parent = nullptr) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return 0;
  if (parent) *parent = static_cast<pid_t>(std::atol(text.c_str() + paren + 4));
  return text[paren + 2];
}

// Gone entirely: not running and not a zombie waiting to be reaped.
bool gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

bool has_children() {
  int status = 0;
  return !(::waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD);
}

// A contention step at t = 1000 ms (next change at 3000 ms): a switch down is timed only when the
// branch running into the step missed the budget on its first requests after it.
TEST(ScenarioSummary, AStepNeedsASwitchOnlyWhenTheRunningBranchMissesTheBudget) {
  using scenario::classify_step;
  using scenario::StepRequest;
  using scenario::StepSwitch;
  const std::vector<StepSwitch> down_at_1100 = {{500, 1, 0, false}, {1100, 0, 2, true}};
  // over budget after the step, then a switch down 100 ms later
  auto o = classify_step(1000, 3000,
                         {{900, 0, false}, {1000, 0, true}, {1050, 0, true}, {1100, 2, false}},
                         down_at_1100, 5);
  EXPECT_TRUE(o.needed);
  ASSERT_NE(o.down, nullptr);
  EXPECT_EQ(o.down->t_ms, 1100);
  EXPECT_EQ(o.seen, 2u);
  EXPECT_EQ(o.missed, 2u);
  EXPECT_EQ(o.running, 0);
  // the same switch after requests that kept the budget: not needed (the upgrade at 500 ms is
  // before the step and not a switch down anyway)
  o = classify_step(1000, 3000, {{1000, 0, false}, {1050, 0, false}, {1100, 2, false}},
                    down_at_1100, 5);
  EXPECT_FALSE(o.needed);
  EXPECT_NE(o.down, nullptr);
  // misses but no switch down before the next change
  o = classify_step(1000, 3000, {{1000, 0, false}, {1200, 0, true}}, {{3500, 0, 2, true}}, 5);
  EXPECT_TRUE(o.needed);
  EXPECT_EQ(o.down, nullptr);
  EXPECT_EQ(o.missed, 1u);
  // a violation past the first `evidence` requests does not count
  std::vector<StepRequest> late;
  for (int i = 0; i < 6; ++i) late.push_back({1000.0 + 10 * i, 0, i == 5});
  EXPECT_FALSE(classify_step(1000, 3000, late, {}, 5).needed);
  EXPECT_TRUE(classify_step(1000, 3000, late, {}, 6).needed);
  // a switch down before any request after the step counts as needed
  o = classify_step(1000, 3000, {{900, 0, false}, {1000, 2, false}}, {{1000, 0, 2, true}}, 5);
  EXPECT_TRUE(o.needed);
  EXPECT_EQ(o.running, 0);
  EXPECT_EQ(o.seen, 0u);
  // misses of a larger branch the loop moved up to are not the running branch's
  o = classify_step(1000, 3000, {{900, 1, false}, {1000, 1, false}, {1050, 3, true}},
                    {{1050, 1, 3, false}}, 5);
  EXPECT_FALSE(o.needed);
  EXPECT_EQ(o.seen, 1u);
}

// --- trace pictures --------------------------------------------------------------------------

// The SVG of a synthetic adaptive run over `branches` branches (listed in shuffled size order) that
// cycles through the branches `used`, one request every 10 ms; their names go to `used_names`.
std::string synthetic_trace_svg(size_t branches, const std::vector<int>& used,
                                std::vector<std::string>* used_names) {
  using namespace scenario;
  Workload w;
  std::mt19937 rng(5);
  std::vector<int> sizes(branches);
  for (size_t b = 0; b < branches; ++b) sizes[b] = static_cast<int>(b);
  std::shuffle(sizes.begin(), sizes.end(), rng);
  for (size_t b = 0; b < branches; ++b) {
    BranchCosts c;
    c.name = "w" + std::to_string(sizes[b]) + "-int8";
    c.macs = 1000.0 * (sizes[b] + 1);
    w.costs.push_back(c);
  }
  Scenario s;
  s.name = "many";
  s.duration_s = 10;
  s.budgets.latency_ms = 5;
  PolicyRun run;
  run.policy = Policy::kAdaptive;
  StateChange start;
  start.budgets = s.budgets;
  start.text = "start";
  run.changes.push_back(start);
  for (int i = 0; i < 1000; ++i) {
    Frame f;
    f.start_ms = 10.0 * i;
    f.ms = 1 + i % 7;
    f.branch = used[static_cast<size_t>(i / 10) % used.size()];
    f.correct = i % 2;
    run.frames.push_back(f);
  }
  run.settled_branch = used.front();
  for (int b : used) used_names->push_back(w.costs[static_cast<size_t>(b)].name);
  const std::vector<TraceRow> rows = join_trace(run, s, w);
  return trace_svg(run, rows, summarize(run, rows, s, w), s, w);
}

// The y and the text of every branch-axis label, in document order.
std::vector<std::pair<double, std::string>> branch_labels(const std::string& svg) {
  std::vector<std::pair<double, std::string>> labels;
  const std::string tag = "<text class=\"branch-label\"";
  for (size_t at = svg.find(tag); at != std::string::npos; at = svg.find(tag, at + 1)) {
    const size_t y = svg.find(" y=\"", at) + 4;
    const size_t text = svg.find('>', at) + 1;
    labels.emplace_back(std::stod(svg.substr(y)), svg.substr(text, svg.find('<', text) - text));
  }
  return labels;
}

double font_size_of_branch_labels(const std::string& svg) {
  const size_t at = svg.find("<text class=\"branch-label\"");
  return std::stod(svg.substr(svg.find("font-size=\"", at) + 11));
}

TEST(ScenarioTrace, BranchAxisLabelsNeverOverlap) {
  struct Case {
    size_t branches;
    std::vector<int> used;
  };
  std::vector<int> forty;  // more used branches than a full panel holds
  for (int b = 0; b < 40; ++b) forty.push_back(b);
  for (const Case& c : {Case{3, {0, 2}}, Case{20, {1, 5, 6, 7}}, Case{32, {0, 3, 4, 5, 17, 31}},
                        Case{64, {2, 3, 10, 11, 12, 40}}, Case{200, forty}}) {
    std::vector<std::string> used;
    const std::string svg = synthetic_trace_svg(c.branches, c.used, &used);
    ASSERT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
    std::vector<std::pair<double, std::string>> labels = branch_labels(svg);
    const double font = font_size_of_branch_labels(svg);
    std::sort(labels.begin(), labels.end());
    for (size_t i = 1; i < labels.size(); ++i)
      EXPECT_GE(labels[i].first - labels[i - 1].first, font)
          << c.branches << " branches: " << labels[i - 1].second << " and " << labels[i].second
          << " overlap";
    // every branch the run used has its label, and small bundles label every branch
    std::map<std::string, int> shown;
    for (const auto& label : labels) ++shown[label.second];
    for (const std::string& name : used) EXPECT_EQ(shown[name], 1) << name;
    // up to 33 branches each has its own; past that, at least every other row of a full panel
    if (c.branches <= 33)
      EXPECT_EQ(labels.size(), c.branches);
    else
      EXPECT_GE(labels.size(), 16u) << c.branches << " branches";
    // inside the branch panel: above the accuracy panel's title
    const size_t title = svg.find(">rolling accuracy (1 s)<");
    const double title_y = std::stod(svg.substr(svg.rfind(" y=\"", title) + 4));
    EXPECT_LT(labels.back().first, title_y - font) << c.branches << " branches";
  }
}

TEST(ScenarioProcesses, BurnersAreStartedKilledAndReaped) {
  std::vector<pid_t> pids;
  {
    ContentionProcesses processes;
    processes.start_burners(3);
    EXPECT_EQ(processes.burners(), 3);
    pids = processes.pids();
    ASSERT_EQ(pids.size(), 3u);
    for (pid_t pid : pids) {
      pid_t parent = 0;
      const char state = process_state(pid, &parent);
      // alive: spinning, not yet scheduled, or briefly in the kernel
      EXPECT_TRUE(state != 0 && state != 'Z' && state != 'X') << state;
      EXPECT_EQ(parent, ::getpid());
    }
    processes.stop_burners(1);  // the most recent one
    EXPECT_EQ(processes.burners(), 2);
    EXPECT_TRUE(gone(pids[2]));
    EXPECT_FALSE(gone(pids[0]));
    processes.stop_burners(5);  // more than run: all of them
    EXPECT_EQ(processes.burners(), 0);
    EXPECT_TRUE(gone(pids[0]));
    processes.start_burners(2);
    pids = processes.pids();
  }  // the destructor kills and reaps the rest
  for (pid_t pid : pids) EXPECT_TRUE(gone(pid)) << pid;
  EXPECT_FALSE(has_children());
}

TEST(ScenarioProcesses, BalloonHoldsTouchedMemoryUntilReleased) {
  ContentionProcesses processes;
  processes.allocate_balloon(32);
  EXPECT_DOUBLE_EQ(processes.balloon_mib(), 32);
  ASSERT_EQ(processes.pids().size(), 1u);
  const pid_t pid = processes.pids()[0];
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  long rss_kib = -1;
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) rss_kib = std::atol(line.c_str() + 6);
  EXPECT_GE(rss_kib, 32 * 1024);  // every page was written, so it is resident
  processes.release_balloon();
  EXPECT_DOUBLE_EQ(processes.balloon_mib(), 0);
  EXPECT_TRUE(gone(pid));
  processes.release_balloon();  // none left: a no-op
  EXPECT_FALSE(has_children());
}

TEST(ScenarioProcesses, AStartedBalloonFillsWhileTheCallerGoesOn) {
  ContentionProcesses processes;
  processes.start_balloon(64);
  processes.start_balloon(16);
  EXPECT_DOUBLE_EQ(processes.balloon_mib(), 80);
  EXPECT_LE(processes.poll_balloons(), 2u);
  const pid_t second = processes.pids()[1];
  processes.release_balloon();  // released while it may still be filling
  EXPECT_TRUE(gone(second));
  EXPECT_DOUBLE_EQ(processes.balloon_mib(), 64);
  // allocate_balloon waits for its own balloon and leaves the first one's pipe to poll
  processes.allocate_balloon(8);
  while (processes.poll_balloons() > 0) ::usleep(1000);
  for (pid_t pid : processes.pids()) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    long rss_kib = -1;
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmRSS:", 0) == 0) rss_kib = std::atol(line.c_str() + 6);
    EXPECT_GE(rss_kib, 8 * 1024) << pid;  // full: every page written
  }
  processes.stop_all();
  EXPECT_EQ(processes.poll_balloons(), 0u);
  EXPECT_FALSE(has_children());
}

TEST(ScenarioProcesses, ChildrenDieWhenTheirParentDies) {
  // A parent that dies without running any destructor, as after SIGKILL or a crash. Its burner is
  // then reparented to us (subreaper), so we can see how it ended.
  if (adascale::testing::under_emulator()) GTEST_SKIP() << "qemu-user has no child subreaper";
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t parent = ::fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {
    auto* processes = new ContentionProcesses;  // never destroyed
    processes->start_burners(1);
    const pid_t burner = processes->pids()[0];
    if (::write(fds[1], &burner, sizeof(burner)) != sizeof(burner)) ::_exit(2);
    ::_exit(0);
  }
  ::close(fds[1]);
  pid_t burner = 0;
  ASSERT_EQ(::read(fds[0], &burner, sizeof(burner)), static_cast<ssize_t>(sizeof(burner)));
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(parent, &status, 0), parent);
  ASSERT_EQ(::waitpid(burner, &status, 0), burner);
  // Killed by the parent-death signal, or, when the parent was gone before the burner armed it,
  // ended by the burner's own check.
  EXPECT_TRUE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
              (WIFEXITED(status) && WEXITSTATUS(status) == 0))
      << status;
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

// --- adascale-run --scenario -------------------------------------------------------------------

// A 1x8x8 grayscale bundle with three branches of different width and catalog costs.
std::string scenario_bundle() {
  static const std::string path = [] {
    std::mt19937 rng(5);
    BundleWriter w;
    w.set_model_name("scenario");
    w.set_input({1, 1, 8, 8}, {0.5f}, {0.25f});
    w.set_classes({"zero", "one", "two"});
    const struct {
      const char* name;
      int channels;
      const char* costs;
    } branches[] = {
        {"wide", 32,
         R"({"macs":20000,"latency_ms":{"median":0.02},"accuracy":0.9,"peak_memory_bytes":90000,
             "memory_access_bytes":40000,"latency_by_threads":[{"threads":2,"median":0.015}]})"},
        {"mid", 8,
         R"({"macs":5000,"latency_ms":{"median":0.008},"accuracy":0.8,"peak_memory_bytes":30000,
             "memory_access_bytes":12000})"},
        {"narrow", 2,
         R"({"macs":1200,"latency_ms":{"median":0.004},"accuracy":0.6,"peak_memory_bytes":9000,
             "memory_access_bytes":4000})"},
    };
    for (const auto& b : branches) {
      const std::string conv = std::string(b.name) + ".w", fc = std::string(b.name) + ".fc";
      w.add_f32(conv, {b.channels, 3, 3, 1}, random_floats(rng, b.channels * 9, -1.0f, 1.0f));
      w.add_f32(fc, {3, b.channels}, random_floats(rng, 3 * b.channels, -1.0f, 1.0f));
      Branch branch;
      branch.name = b.name;
      branch.output = "logits";
      branch.costs_json = b.costs;
      branch.nodes = adascale::testing::small_classifier(conv, "", fc);
      EXPECT_TRUE(w.add_branch(branch).ok());
    }
    const std::string p = temp_path("scenario.bundle");
    EXPECT_TRUE(w.write(p).ok());
    return p;
  }();
  return path;
}

std::string write_text(const std::string& name, const std::string& text) {
  const std::string path = temp_path(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// 48 random images with labels, as plain IDX files.
std::pair<std::string, std::string> idx_files() {
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> pixel(0, 255), label(0, 2);
  auto header = [](std::vector<uint32_t> dims) {
    std::string out{0, 0, 0x08, static_cast<char>(dims.size())};
    for (uint32_t d : dims)
      for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>(d >> shift);
    return out;
  };
  std::string images = header({48, 8, 8}), labels = header({48});
  for (int i = 0; i < 48 * 64; ++i) images += static_cast<char>(pixel(rng));
  for (int i = 0; i < 48; ++i) labels += static_cast<char>(label(rng));
  return {write_text("scenario_images.idx", images), write_text("scenario_labels.idx", labels)};
}

std::string read_text(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

// Orphans of the CLI would become our children, so has_children() sees anything it left behind.
class ScenarioCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (adascale::testing::under_emulator()) GTEST_SKIP() << "qemu-user has no child subreaper";
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  }
  void TearDown() override { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
};

using Result = adascale::testing::CommandResult;

// `prefix`: shell commands run before the CLI (in the same shell).
Result run_cli(const std::string& args, const std::string& prefix = "") {
  return adascale::testing::run_command(prefix + std::string(ADASCALE_RUN_CLI) + " " + args);
}

constexpr const char* kShortScenario = R"([scenario]
name = short
duration_s = 2
frame_images = 256
settle_s = 0.2
calibration_s = 0.05
[adaptation]
period_ms = 20
min_dwell_ms = 200
[budgets]
latency_ms = 2
[timeline]
0.2 = burners_start 2
0.8 = balloon_alloc 8
1.2 = balloon_release
1.5 = budget latency_ms=1
1.6 = burners_stop 2
)";

TEST_F(ScenarioCli, ShortScenarioWritesTracesPicturesAndASummary) {
  const auto [images, labels] = idx_files();
  const std::string scenario = write_text("short.ini", kShortScenario);
  const std::string out = temp_path("scenario_traces");
  fs::remove_all(out);
  // A temporary that a killed run left behind (its writer is gone) is cleaned up.
  fs::create_directories(out);
  const pid_t dead = ::fork();
  ASSERT_GE(dead, 0);
  if (dead == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);
  const std::string stale = out + "/short-adaptive.csv.tmp." + std::to_string(dead) + ".1";
  std::ofstream(stale) << "partial";
  const Result r = run_cli("--bundle " + scenario_bundle() + " --scenario " + scenario + " --idx " +
                           images + " --labels " + labels + " --trace-out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* text :
       {"policy", "violations", "accuracy", "switches", "step->switch", "mJ/request", "adaptive",
        "(adaptive)", "largest    wide", "smallest   narrow", "hindsight", "hindsight calibration",
        "oracle     (segments)", "gap to oracle (pt)", "oracle: per segment",
        "switches per contention step (3 steps): adaptive"})
    EXPECT_NE(r.output.find(text), std::string::npos) << text << " missing in\n" << r.output;
  // where the energy comes from, said either way (this host reads no power; others may)
  EXPECT_TRUE(r.output.find("energy      modelled: this host reads no power") !=
                  std::string::npos ||
              r.output.find("energy      this host reads") != std::string::npos)
      << r.output;

  for (const char* policy : {"adaptive", "largest", "smallest", "hindsight", "oracle"}) {
    const std::string base = out + "/short-" + policy;
    const std::string csv = read_text(base + ".csv");
    std::istringstream lines(csv);
    std::string header;
    std::getline(lines, header);
    EXPECT_EQ(header.rfind("time_s,burners,balloon_mib,budget_latency_ms,", 0), 0u) << header;
    for (const char* column :
         {"cpu_utilization", "procs_running", "mem_available_mib", "branch", "predicted_ms",
          "predicted_uncorrected_ms", "observed_ms", "correct", "violation"})
      EXPECT_NE(header.find(column), std::string::npos) << column;
    size_t rows = 0, with_burners = 0;
    for (std::string line; std::getline(lines, line); ++rows) {
      const size_t comma = line.find(',');
      with_burners += line.compare(comma + 1, 2, "2,") == 0;  // second column: burners
    }
    EXPECT_GT(rows, 10u) << policy;
    EXPECT_GT(with_burners, 0u) << policy;  // the timeline was played

    const std::string svg = read_text(base + ".svg");
    EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
    EXPECT_NE(svg.find("</svg>\n"), std::string::npos);
    EXPECT_NE(svg.find("burners_start 2"), std::string::npos);
    EXPECT_NE(svg.find("rolling accuracy"), std::string::npos);
  }
  EXPECT_NE(read_text(out + "/short-summary.txt").find("hindsight calibration"), std::string::npos);
  for (const auto& entry : fs::directory_iterator(out))
    EXPECT_EQ(entry.path().string().find(".tmp"), std::string::npos) << entry.path();
  EXPECT_FALSE(has_children()) << "burners or balloons left behind";
}

// With --threads 2 and a catalog that times "wide" on two threads, the adaptive loop chooses the
// count with the branch, while the static policies (and the oracle's calibration) run on one
// thread, the count the catalog's latency_ms is of; the trace says which count each request ran.
TEST_F(ScenarioCli, WithThreadsOnlyTheLoopChoosesThem) {
  const auto [images, labels] = idx_files();
  const std::string scenario = write_text("threads.ini", kShortScenario);
  const std::string out = temp_path("scenario_threads");
  fs::remove_all(out);
  const Result r = run_cli("--bundle " + scenario_bundle() + " --scenario " + scenario + " --idx " +
                           images + " --labels " + labels +
                           " --threads 2 --policy largest,adaptive" + " --trace-out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* policy : {"largest", "adaptive"}) {
    std::istringstream lines(read_text(out + "/short-" + std::string(policy) + ".csv"));
    std::string header;
    std::getline(lines, header);
    ASSERT_GE(header.size(), 8u);
    EXPECT_EQ(header.substr(header.size() - 8), ",threads") << header;
    std::set<std::string> counts;
    for (std::string line; std::getline(lines, line);)
      counts.insert(line.substr(line.rfind(',') + 1));
    if (std::string(policy) == "largest") {
      EXPECT_EQ(counts, std::set<std::string>{"1"});
    } else {
      EXPECT_FALSE(counts.empty());
      for (const std::string& c : counts) EXPECT_TRUE(c == "1" || c == "2") << c;
    }
  }
  EXPECT_FALSE(has_children()) << "burners or balloons left behind";
}

// Two apps side by side: the second is another process with its own loop; both replay the
// scenario, only the first plays the load, and both are reported. A second app that cannot
// start is a one-line error, and nothing is left running.
TEST_F(ScenarioCli, TwoAppsReplayTheScenarioSideBySide) {
  const auto [images, labels] = idx_files();
  const std::string scenario =
      write_text("pair.ini",
                 "[scenario]\nname = pair\nduration_s = 1\nframe_images = 64\nsettle_s = 0.2\n"
                 "calibration_s = 0.05\n[budgets]\nlatency_ms = 2\n[timeline]\n"
                 "0.3 = burners_start 1\n0.7 = burners_stop 1\n");
  const std::string out = temp_path("pair_traces");
  fs::remove_all(out);
  const std::string common = "--scenario " + scenario + " --idx " + images + " --labels " + labels;
  const Result r = run_cli("--bundle " + scenario_bundle() + " " + common +
                           " --policy adaptive,oracle --trace-out " + out + " --second-bundle " +
                           scenario_bundle());
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* text : {"scenario pair: 1.0 s", "second app (", "scenario pair-app2: 1.0 s",
                           "[pair-app2] adaptive: settling", "oracle: per segment"})
    EXPECT_NE(r.output.find(text), std::string::npos) << text << " missing in\n" << r.output;
  // the first app's summary comes first
  EXPECT_LT(r.output.find("scenario pair: 1.0 s"), r.output.find("scenario pair-app2: 1.0 s"));
  for (const char* app : {"pair", "pair-app2"})
    for (const char* policy : {"adaptive", "oracle"}) {
      const std::string csv = read_text(out + "/" + app + "-" + policy + ".csv");
      // the second app records the load the first one plays
      size_t loaded = 0;
      std::istringstream lines(csv);
      for (std::string line; std::getline(lines, line);)
        loaded += line.compare(line.find(',') + 1, 2, "1,") == 0;
      EXPECT_GT(loaded, 0u) << app << " " << policy;
    }
  EXPECT_FALSE(has_children()) << "a second app, burners or balloons left behind";

  const Result missing = run_cli("--bundle " + scenario_bundle() + " " + common +
                                 " --policy adaptive --second-bundle " + temp_path("no.bundle"));
  EXPECT_EQ(missing.code, 1) << missing.output;
  // checked before anything runs: one line, naming the option
  EXPECT_EQ(missing.output.rfind("adascale-run: error: --second-bundle: ", 0), 0u)
      << missing.output;
  EXPECT_EQ(std::count(missing.output.begin(), missing.output.end(), '\n'), 1) << missing.output;
  EXPECT_FALSE(has_children());
  const Result usage =
      run_cli("--bundle " + scenario_bundle() + " --list --second-bundle " + scenario_bundle());
  EXPECT_EQ(usage.code, 2) << usage.output;
  // descriptors no test process has open
  const Result link =
      run_cli("--bundle " + scenario_bundle() + " " + common + " --app-link 900,901");
  EXPECT_EQ(link.code, 1) << link.output;
  EXPECT_NE(link.output.find("--app-link: expected two open descriptors R,W, got '900,901'"),
            std::string::npos)
      << link.output;
}

// A budget relative to the bundle's idle latencies is resolved and printed before the run; a
// bundle that cannot resolve it is a one-line error before anything runs.
TEST_F(ScenarioCli, RelativeBudgetIsResolvedAndPrinted) {
  const auto [images, labels] = idx_files();
  const std::string scenario =
      write_text("relative.ini",
                 "[scenario]\nname = relative\nduration_s = 0.3\nframe_images = 16\nsettle_s = 0\n"
                 "[budgets]\nlatency_ms = 2 x fastest-accurate\n[timeline]\n"
                 "0.1 = budget latency_ms=1.5 x largest\n");
  const Result r = run_cli("--bundle " + scenario_bundle() + " --scenario " + scenario + " --idx " +
                           images + " --labels " + labels + " --policy smallest");
  ASSERT_EQ(r.code, 0) << r.output;
  // accurate within 1 pt of the best: only wide (0.9); largest: wide
  EXPECT_NE(r.output.find("budget 2 x fastest-accurate = 0.64 ms per request (wide: 0.02 ms per "
                          "image x 16 images)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("t=0.1 s: budget 1.5 x largest = 0.48 ms per request"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("latency budget 2 x fastest-accurate = 0.64 ms per request"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(has_children());
}

// --generate-scenario: the same file for the same seed, and one that the replayer takes.
TEST_F(ScenarioCli, GeneratedScenarioIsWrittenAndLoads) {
  const std::string a = temp_path("generated-a.ini"), b = temp_path("generated-b.ini");
  const Result r = run_cli("--bundle " + scenario_bundle() + " --generate-scenario 7 --out " + a);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("seed 7"), std::string::npos) << r.output;
  const Result again = run_cli("--bundle " + scenario_bundle() + " --generate-scenario 7");
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(again.output, read_text(a));
  ASSERT_EQ(run_cli("--bundle " + scenario_bundle() + " --generate-scenario 8 --out " + b).code, 0);
  EXPECT_NE(read_text(a), read_text(b));
  const Scenario s = scenario::load_scenario(a);
  EXPECT_EQ(s.name, "random-7");
  EXPECT_EQ(s.frame_images, 512);  // the fastest accurate branch: 0.02 ms per image
  EXPECT_TRUE(s.latency_relative);
  const Result bad = run_cli("--bundle " + scenario_bundle() + " --generate-scenario 7 --list");
  EXPECT_EQ(bad.code, 2) << bad.output;
}

TEST_F(ScenarioCli, BadScenarioIsOneLineError) {
  const auto [images, labels] = idx_files();
  const std::string scenario =
      write_text("bad.ini", "[scenario]\nduration_s = 2\n[timeline]\n1 = burners_stop 1\n");
  const Result r = run_cli("--bundle " + scenario_bundle() + " --scenario " + scenario + " --idx " +
                           images + " --labels " + labels);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_EQ(r.output, "adascale-run: error: " + scenario +
                          ":4: key 'burners_stop': stops 1 burners but only 0 run\n");
  const std::string good = write_text("good.ini", "[scenario]\nduration_s = 2\n");
  const Result p = run_cli("--bundle " + scenario_bundle() + " --scenario " + good + " --idx " +
                           images + " --labels " + labels + " --policy fastest");
  EXPECT_EQ(p.code, 1);
  EXPECT_NE(p.output.find("unknown policy 'fastest'"), std::string::npos) << p.output;
}

TEST_F(ScenarioCli, ScenarioPastTheLimitsFailsBeforeAnythingRuns) {
  const auto [images, labels] = idx_files();
  // Under a 2 GiB address space, so that a run that got as far as reserving its day of requests
  // fails at once instead of playing it (not under AddressSanitizer, whose shadow memory alone
  // needs terabytes of address space).
#ifdef __SANITIZE_ADDRESS__
  const char* limit = "";
#else
  const char* limit = "ulimit -v 2097152; ";
#endif
  const std::string day = write_text("day.ini", "[scenario]\nduration_s = 86400\nsettle_s = 0\n");
  const Result r = run_cli("--bundle " + scenario_bundle() + " --scenario " + day + " --idx " +
                               images + " --labels " + labels + " --policy adaptive",
                           limit);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_EQ(r.output, "adascale-run: error: " + day +
                          ":2: key 'duration_s': expected a number >= 0.1 and <= 3600, got "
                          "'86400'\n");
}

TEST_F(ScenarioCli, NameThatLeavesTheTraceFolderIsRefusedBeforeRunning) {
  const auto [images, labels] = idx_files();
  const fs::path root = temp_path("name_escape");
  fs::remove_all(root);
  const fs::path out = root / "traces";
  for (const char* name : {"../escaped", "a/b"}) {
    const std::string scenario =
        write_text("escape.ini", std::string("[scenario]\nname = ") + name +
                                     "\nduration_s = 0.5\nsettle_s = 0\n");
    const Result r =
        run_cli("--bundle " + scenario_bundle() + " --scenario " + scenario + " --idx " + images +
                " --labels " + labels + " --policy adaptive --trace-out " + out.string());
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_EQ(r.output, "adascale-run: error: " + scenario +
                            ":2: key 'name': expected 1 to 64 characters of A-Z a-z 0-9 . _ - "
                            "(one file name, not . or ..), got '" +
                            name + "'\n");
    // nothing was written, inside the trace folder or next to it
    std::error_code ec;
    for (const auto& entry : fs::recursive_directory_iterator(root, ec))
      EXPECT_TRUE(entry.is_directory()) << entry.path();
  }
  EXPECT_FALSE(has_children());
}

TEST_F(ScenarioCli, UnwritableTraceFolderFailsBeforeRunning) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes into any folder";
  const auto [images, labels] = idx_files();
  const fs::path out = temp_path("read_only_traces");
  fs::remove_all(out);
  fs::create_directories(out);
  fs::permissions(out, fs::perms::owner_read | fs::perms::owner_exec);
  const std::string scenario =
      write_text("ro.ini", "[scenario]\nname = ro\nduration_s = 0.5\nsettle_s = 0\n");
  const Result r =
      run_cli("--bundle " + scenario_bundle() + " --scenario " + scenario + " --idx " + images +
              " --labels " + labels + " --policy adaptive --trace-out " + out.string());
  fs::permissions(out, fs::perms::owner_all);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_EQ(
      r.output.rfind(
          "adascale-run: error: cannot write into the trace folder '" + out.string() + "': ", 0),
      0u)
      << r.output;
  EXPECT_EQ(r.output.find("adaptive"), std::string::npos) << "the scenario ran:\n" << r.output;
}

// Children of `parent` per /proc.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t ppid = 0;
    const pid_t pid = static_cast<pid_t>(std::atol(name.c_str()));
    if (process_state(pid, &ppid) != 0 && ppid == parent) out.push_back(pid);
  }
  return out;
}

TEST_F(ScenarioCli, InterruptKillsAndReapsTheBurners) {
  const auto [images, labels] = idx_files();
  const std::string scenario = write_text(
      "long.ini", "[scenario]\nduration_s = 600\nsettle_s = 0\n[timeline]\n0 = burners_start 2\n");
  const std::string log = temp_path("interrupted.log");
  const std::string bundle = scenario_bundle();
  const pid_t cli = ::fork();
  ASSERT_GE(cli, 0);
  if (cli == 0) {
    std::FILE* f = std::freopen(log.c_str(), "w", stdout);
    (void)f;
    ::dup2(::fileno(stdout), 2);
    ::execl(ADASCALE_RUN_CLI, ADASCALE_RUN_CLI, "--bundle", bundle.c_str(), "--scenario",
            scenario.c_str(), "--idx", images.c_str(), "--labels", labels.c_str(), "--policy",
            "adaptive", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Waits for the two burners (no time limit: CTest's timeout is the backstop).
  std::vector<pid_t> burners;
  int status = 0;
  while (burners.size() < 2) {
    ASSERT_EQ(::waitpid(cli, &status, WNOHANG), 0) << "adascale-run ended early:\n"
                                                   << read_text(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    burners = children_of(cli);
  }
  ASSERT_EQ(::kill(cli, SIGINT), 0);
  ASSERT_EQ(::waitpid(cli, &status, 0), cli);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130) << read_text(log);
  EXPECT_NE(read_text(log).find("interrupted"), std::string::npos);
  for (pid_t pid : burners) EXPECT_TRUE(gone(pid)) << pid;
  EXPECT_FALSE(has_children());
}

}  // namespace
}  // namespace adascale
