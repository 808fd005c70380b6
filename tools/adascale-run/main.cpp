// adascale-run: runs one branch of a bundle over IDX files (MNIST style, plain or .gz) or a folder
// of PNG images and reports accuracy, per-image latency and throughput; --list prints the branches
// with the costs recorded in the catalog; --profile times every node; --scenario replays a
// contention scenario (CPU burner processes, memory balloons, budget changes) once per policy and
// writes traces and pictures (tools/scenario/scenario_run.h); --calibrate measures every branch
// on this machine and writes the device profile the adaptation loop then predicts from;
// --generate-scenario writes a seeded random scenario sized for the bundle. Inference
// goes through the public C API only, so what it measures is what an application gets; the scenario
// replay drives the adaptation loop's C++ class directly so that its driver thread can read the
// loop's context without sharing the handle.
//
// Exit status: 0, 1 for a failure (a bundle or input that cannot be read), 2 for a usage mistake,
// 130 when a scenario is interrupted.
#include <algorithm>
#include <cstdio>
#include <string>

#include "base/command_line.h"
#include "base/durable_file.h"
#include "tools/adascale-run/branch_list.h"
#include "tools/adascale-run/calibrate_command.h"
#include "tools/adascale-run/evaluate.h"
#include "tools/adascale-run/failure.h"
#include "tools/adascale-run/idx_input.h"
#include "tools/adascale-run/node_profile.h"
#include "tools/adascale-run/png_input.h"
#include "tools/adascale-run/runtime_handle.h"
#include "tools/adascale-run/scenario_command.h"

namespace adascale::run_cli {
namespace {

using base::UsageError;

constexpr int kMaxThreads = 1024;  // more are clamped, not refused
constexpr int64_t kMaxProfileRuns = 100000;
constexpr int kMaxCalibrationRuns = 1000000;

constexpr const char* kModes =
    "modes:\n"
    "  adascale-run --bundle B [--branch NAME] (--images DIR | --idx IMAGES [--labels LABELS])\n"
    "               [--backend NAME] [--threads N] [--limit N] [--predictions FILE]\n"
    "  adascale-run --bundle B --list\n"
    "  adascale-run --bundle B [--branch NAME] [--backend NAME] [--threads N] --profile RUNS\n"
    "  adascale-run --bundle B --scenario S.ini --idx IMAGES --labels LABELS\n"
    "               [--policy P] [--trace-out DIR] [--device-profile FILE|none]\n"
    "               [--second-bundle B2]\n"
    "  adascale-run --bundle B --calibrate [--out FILE] [--runs N] [--rounds N]\n"
    "               [--backend NAME] [--threads N]\n"
    "  adascale-run --bundle B --generate-scenario SEED [--out FILE]\n"
    "Pixels are scaled to [0,1]; the runtime applies the catalog's mean/std.";

struct Options {
  std::string bundle, branch, images_dir, idx_images, idx_labels;
  std::string scenario, trace_out, policy = "all";
  std::string profile_out, device_profile;
  std::string second_bundle, app_link;
  int calibrate_runs = 200, calibrate_rounds = 5;
  int64_t generate_seed = -1;  // >= 0: --generate-scenario
  bool calibrate = false;
  std::string predictions;  // --predictions FILE
  std::string backend_text = "xnnpack";
  adascale_backend backend = ADASCALE_BACKEND_XNNPACK;
  int threads = 1;
  int64_t limit = -1;        // <= 0: every image
  int64_t profile_runs = 0;  // > 0: --profile
  bool list = false;
};

void declare_options(base::CommandLine* cli, Options* o) {
  cli->option("bundle", &o->bundle, "the bundle folder", "DIR")
      .required("bundle")
      .option("branch", &o->branch, "the branch to run (default: the first; --list names them)",
              "NAME")
      .option("images", &o->images_dir,
              "PNG files, in one sub-folder per class (named as in the catalog) or directly\n"
              "in DIR (unlabelled); resized (bilinear) to the bundle's input and converted to\n"
              "its channel count",
              "DIR")
      .option("idx", &o->idx_images, "IDX ubyte images [N,H,W] or [N,H,W,C], plain or gzip",
              "IMAGES")
      .option("labels", &o->idx_labels, "IDX ubyte labels [N] of the --idx images", "LABELS")
      .option("backend", &o->backend_text,
              "xnnpack also runs the runtime's own kernels where the CPU has them (int8\n"
              "convolution on AVX512-VNNI); xnnpack-plain runs XNNPACK alone; reference",
              "NAME")
      .option("threads", &o->threads, "inference threads; more than 1024 count as 1024")
      .range("threads", 1)
      .option("limit", &o->limit, "read at most N images")
      .range("limit", 1)
      .default_text("limit", "all")
      .flag("list", &o->list, "print the branches and their catalog costs, then exit")
      .option("profile", &o->profile_runs,
              "run the branch RUNS times on one input and print the median time of every\n"
              "node and of every layer type (needs no images)",
              "RUNS")
      .range("profile", 1, static_cast<double>(kMaxProfileRuns))
      .default_text("profile", "")
      .option("scenario", &o->scenario,
              "replay a contention scenario (docs/scenarios.md) once per policy, cycling\n"
              "through the --idx images; prints a summary table",
              "FILE")
      .option("policy", &o->policy,
              "adaptive, largest, smallest, hindsight, oracle, all or a comma list (with\n"
              "--scenario)",
              "P")
      .option("predictions", &o->predictions,
              "write the top-1 class of every image, one per line, to FILE (e.g. to compare\n"
              "two devices)",
              "FILE")
      .option("trace-out", &o->trace_out,
              "write a trace CSV and an SVG per policy, and the summary, into DIR", "DIR")
      .flag("calibrate", &o->calibrate,
            "measure every branch on this machine (median and p90, interleaved rounds) and\n"
            "write the device profile that the adaptation loop then predicts from")
      .option("out", &o->profile_out,
              "where --calibrate writes the profile (default BUNDLE/device-profile.json), or\n"
              "--generate-scenario the scenario (default: standard output)",
              "FILE")
      .default_text("out", "")
      .option("generate-scenario", &o->generate_seed,
              "write a random contention scenario for the bundle, the same for the same SEED\n"
              "(0 to 4294967295), bundle and core count (docs/scenarios.md)",
              "SEED")
      .range("generate-scenario", 0, 4294967295.0)
      .default_text("generate-scenario", "")
      .option("runs", &o->calibrate_runs, "timed runs per branch (with --calibrate)")
      .range("runs", 1, kMaxCalibrationRuns)
      .option("rounds", &o->calibrate_rounds,
              "interleaved rounds the runs are split into (with --calibrate)")
      .range("rounds", 1, kMaxCalibrationRuns)
      .option("second-bundle", &o->second_bundle,
              "with --scenario: a second app, another process with this bundle and its own\n"
              "adaptation loop, replays the scenario side by side; both are reported",
              "DIR")
      .option("app-link", &o->app_link,
              "internal: run as the second app of --second-bundle over descriptors R,W", "R,W")
      .option("device-profile", &o->device_profile,
              "the loop predicts from this device profile instead of the bundle's\n"
              "device-profile.json; none: from the catalog (with --scenario or --list)",
              "FILE")
      .epilog(kModes);
}

// What the options of one mode exclude.
void check_combination(const Options& o) {
  if ((!o.second_bundle.empty() || !o.app_link.empty()) && o.scenario.empty())
    throw UsageError("--second-bundle and --app-link go with --scenario (see --help)");
  if (!o.second_bundle.empty() && !o.app_link.empty())
    throw UsageError("--second-bundle and --app-link do not go together (see --help)");
  if (o.generate_seed >= 0) {
    if (o.calibrate || !o.images_dir.empty() || !o.idx_images.empty() || !o.idx_labels.empty() ||
        !o.scenario.empty() || !o.trace_out.empty() || o.policy != "all" || o.limit > 0 || o.list ||
        o.profile_runs > 0 || !o.branch.empty() || !o.device_profile.empty() ||
        !o.predictions.empty() || o.calibrate_runs != 200 || o.calibrate_rounds != 5)
      throw UsageError("--generate-scenario takes --bundle and --out only (see --help)");
    return;
  }
  if (o.calibrate) {
    if (!o.images_dir.empty() || !o.idx_images.empty() || !o.idx_labels.empty() ||
        !o.scenario.empty() || !o.trace_out.empty() || o.policy != "all" || o.limit > 0 || o.list ||
        o.profile_runs > 0 || !o.branch.empty() || !o.device_profile.empty() ||
        !o.predictions.empty())
      throw UsageError(
          "--calibrate measures every branch on its own input: no --images, --idx, --labels, "
          "--limit, --list, --profile, --branch, --scenario, --trace-out, --policy, "
          "--predictions or --device-profile (see --help)");
    if (o.calibrate_rounds > o.calibrate_runs)
      throw UsageError("--rounds must not exceed --runs (see --help)");
    return;
  }
  if (!o.profile_out.empty() || o.calibrate_runs != 200 || o.calibrate_rounds != 5)
    throw UsageError("--out, --runs and --rounds go with --calibrate (see --help)");
  if (!o.device_profile.empty() && o.scenario.empty() && !o.list)
    throw UsageError("--device-profile goes with --scenario or --list (see --help)");
  if (o.profile_runs > 0) {
    if (!o.images_dir.empty() || !o.idx_images.empty() || !o.idx_labels.empty() ||
        !o.scenario.empty() || !o.trace_out.empty() || o.policy != "all" || o.limit > 0 || o.list)
      throw UsageError(
          "--profile runs on its own input: no --images, --idx, --labels, --limit, --list, "
          "--scenario, --trace-out or --policy (see --help)");
  } else if (!o.list) {
    if (o.images_dir.empty() == o.idx_images.empty())
      throw UsageError("give exactly one of --images DIR and --idx IMAGES (see --help)");
    if (!o.idx_labels.empty() && o.idx_images.empty())
      throw UsageError("--labels goes with --idx (see --help)");
  }
  if (!o.predictions.empty() && (o.profile_runs > 0 || o.list || !o.scenario.empty()))
    throw UsageError("--predictions goes with --images or --idx alone (see --help)");
  if (o.scenario.empty()) {
    if (!o.trace_out.empty() || o.policy != "all")
      throw UsageError("--trace-out and --policy go with --scenario (see --help)");
  } else if (!o.list) {
    if (o.idx_images.empty() || o.idx_labels.empty())
      throw UsageError("--scenario needs --idx IMAGES and --labels LABELS (see --help)");
    if (!o.branch.empty())
      throw UsageError("--branch does not go with --scenario: --policy picks it (see --help)");
  }
}

void print_evaluation(const Options& o, const Runtime& rt, const std::string& branch,
                      const Evaluation& e) {
  std::printf("bundle      %s\nbranch      %s (backend %s, %d thread%s)\n", o.bundle.c_str(),
              branch.c_str(), backend_name(o.backend), o.threads, o.threads == 1 ? "" : "s");
  std::printf("images      %zu (%lldx%lldx%lld CxHxW)\n", e.images,
              static_cast<long long>(rt.input.channels), static_cast<long long>(rt.input.height),
              static_cast<long long>(rt.input.width));
  if (e.labelled)
    std::printf("accuracy    %.2f%% (%zu/%zu)\n", 100.0 * e.correct / e.images, e.correct,
                e.images);
  else
    std::printf("accuracy    n/a (no labels)\n");
  std::printf("latency     median %.4f ms, p90 %.4f ms, mean %.4f ms per image (batch 1)\n",
              e.median_ms, e.p90_ms, e.mean_ms);
  std::printf("throughput  %.1f images/s (whole loop, one image at a time)\n", e.images_per_s);
}

int run(const Options& o) {
  Runtime rt(o.bundle, o.backend, o.threads);
  if (o.calibrate) {
    run_calibration({o.profile_out, o.calibrate_runs, o.calibrate_rounds}, rt);
    return 0;
  }
  if (o.generate_seed >= 0) {
    generate_scenario({static_cast<uint32_t>(o.generate_seed), o.profile_out}, rt);
    return 0;
  }
  if (!o.device_profile.empty()) use_device_profile(o.device_profile, rt);
  if (o.list) {
    print_list(rt);
    print_latency_source(rt);
    return 0;
  }
  if (!o.scenario.empty())
    return run_scenario(
        {o.scenario, o.policy, o.trace_out, o.idx_images, o.idx_labels, o.limit, o.second_bundle,
         o.app_link, o.backend_text, o.backend, o.threads, o.device_profile == "none"},
        rt);
  const std::string branch = o.branch.empty() ? rt.branches.front().first : o.branch;
  if (std::none_of(rt.branches.begin(), rt.branches.end(),
                   [&](const auto& b) { return b.first == branch; }))
    throw Failure("unknown branch '" + branch + "' (--list shows the branches)");
  rt.check(adascale_select(rt.get(), branch.c_str()), "cannot prepare branch '" + branch + "'");
  if (o.profile_runs > 0) {
    print_profile(rt, branch, o.profile_runs, o.backend, o.threads);
    return 0;
  }
  const Dataset ds = o.idx_images.empty() ? load_png_folder(o.images_dir, rt.input,
                                                            catalog_class_names(o.bundle), o.limit)
                                          : load_idx(o.idx_images, o.idx_labels, rt.input, o.limit);
  const Evaluation e = evaluate(rt, ds);
  print_evaluation(o, rt, branch, e);
  if (!o.predictions.empty()) {
    std::string text, error;
    for (int c : e.predicted) text += std::to_string(c) + "\n";
    if (!base::write_file_atomic(o.predictions, text.data(), text.size(), &error))
      throw Failure("--predictions: " + error);
    std::printf("predictions %s (%zu lines)\n", o.predictions.c_str(), e.predicted.size());
  }
  return 0;
}

int run_main(int argc, char** argv) {
  Options o;
  try {
    base::CommandLine cli("adascale-run",
                          "Runs a bundle's branches over images: accuracy, latency, profiles, "
                          "contention scenarios.");
    declare_options(&cli, &o);
    if (cli.parse(argc, argv) != base::CommandLine::Outcome::kRun) return 0;
    if (!parse_backend(o.backend_text, &o.backend))
      throw UsageError("--backend: expected xnnpack, xnnpack-plain or reference, got '" +
                       o.backend_text + "' (see --help)");
    o.threads = std::min(o.threads, kMaxThreads);
    check_combination(o);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "adascale-run: error: %s\n", e.what());
    return 2;
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "adascale-run: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace
}  // namespace adascale::run_cli

int main(int argc, char** argv) { return adascale::run_cli::run_main(argc, argv); }
