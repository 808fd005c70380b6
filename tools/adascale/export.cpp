// adascale export --checkpoint FILE [--checkpoint FILE ...] --out DIR.bundle [--branches ...]
// adascale export --format onnx --bundle X.bundle --out DIR [--branches ...]
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "base/command_line.h"
#include "export/checkpoint_export.h"
#include "export/onnx_export.h"
#include "tools/adascale/commands.h"

namespace adascale::cli {
namespace {

// the value of --format (either spelling), "" when not given
std::string format_of(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--format" && i + 1 < args.size()) return args[i + 1];
    if (args[i].rfind("--format=", 0) == 0) return args[i].substr(9);
  }
  return "";
}

int run_export_onnx(const std::vector<std::string>& args) {
  std::string format, bundle, branches = "all", out_dir;
  base::CommandLine cli("adascale export --format onnx",
                        "branches of a bundle as ONNX models (opset 13, NCHW, input normalized "
                        "as the bundle's graph expects it; docs/onnx-export.md)");
  cli.option("format", &format, "onnx here; bundle (the default) exports checkpoints", "FORMAT")
      .option("bundle", &bundle, "the bundle to read", "DIR")
      .required("bundle")
      .option("branches", &branches, "all, pareto (costs marked pareto) or names, comma-separated",
              "LIST")
      .default_text("branches", "all")
      .option("out", &out_dir, "the folder the .onnx files go to (one per branch)", "DIR")
      .required("out");
  if (cli.parse(args) != base::CommandLine::Outcome::kRun) return 0;
  size_t bytes = 0, nodes = 0, int8 = 0;
  const auto files =
      exporter::export_onnx_files(bundle, branches, out_dir, [&](const exporter::OnnxFile& f) {
        std::printf("%s: %s, %zu bytes, %zu nodes, opset %d%s\n", f.branch.c_str(), f.path.c_str(),
                    f.bytes, f.nodes, f.opset, f.int8 ? ", int8 QDQ" : "");
        bytes += f.bytes;
        nodes += f.nodes;
        int8 += f.int8 ? 1 : 0;
      });
  std::printf("wrote %zu ONNX models (%zu int8 QDQ) to %s: %zu bytes, %zu nodes\n", files.size(),
              int8, out_dir.c_str(), bytes, nodes);
  return 0;
}

}  // namespace

int run_export(const std::vector<std::string>& args) {
  const std::string format = format_of(args);
  if (format == "onnx") return run_export_onnx(args);
  std::vector<std::string> checkpoints;
  std::string out_path, branches, precisions, int8_weights, format_arg;
  int64_t qat_steps = -1, test_images = 0;
  double int8_max_loss = -1;
  exporter::ExportOptions opts;
  base::CommandLine cli("adascale export",
                        "one bundle: every branch lowered, profiled in the runtime on this "
                        "machine and checked for parity against LibTorch");
  cli.option("format", &format_arg,
             "bundle, or onnx: branches of a bundle as ONNX models (see --format onnx --help)",
             "FORMAT")
      .default_text("format", "bundle")
      .option("checkpoint", &checkpoints,
              "a checkpoint (repeat for several: one branch per single-model checkpoint)", "FILE")
      .required("checkpoint")
      .option("out", &out_path, "the bundle folder to write", "DIR")
      .required("out")
      .option("branches", &branches,
              "of a multi-branch checkpoint: all, pareto (the front of measured latency vs\n"
              "held-out accuracy; profiles every branch twice) or names (NAME>int8 for a twin)",
              "LIST")
      .default_text("branches", "all")
      .option("precisions", &precisions, "with all or pareto: fp32, int8 or fp32,int8", "LIST")
      .option("threads", &opts.threads, "runtime threads while profiling")
      .range("threads", 1, 1024)
      .option("parity-images", &opts.parity_images, "images compared against LibTorch")
      .range("parity-images", 1)
      .option("test-images", &test_images, "held-out images for accuracy (0: the whole split)")
      .range("test-images", 0)
      .option("latency-runs", &opts.latency_runs, "timed batch-1 runs per branch")
      .range("latency-runs", 1)
      .option("latency-rounds", &opts.latency_rounds, "rounds the runs are split into")
      .range("latency-rounds", 1)
      .option("latency-threads", &opts.latency_threads,
              "with --threads 1, also time every branch on 2 to N threads for the catalog's\n"
              "latency_by_threads (0: the CPUs this process may use, at most 4; 1: none)")
      .range("latency-threads", 0, static_cast<int>(kMaxThreadLatencies) + 1)
      .option("qat-steps", &qat_steps, "int8 fine-tuning steps (default: the config's)")
      .default_text("qat-steps", "config")
      .option("int8-weights", &int8_weights,
              "shared (quantize the fp32 twin's weights when prepared) or finetuned\n"
              "(default: the config's)",
              "MODE")
      .option("int8-max-loss", &int8_max_loss,
              "points a shared twin may lose on the calibration images before it is fine-tuned\n"
              "instead (default: the config's)",
              "PT")
      .default_text("int8-max-loss", "config");
  if (cli.parse(args) != base::CommandLine::Outcome::kRun) return 0;
  if (cli.given("format") && format_arg != "bundle")
    throw base::UsageError("--format: unknown value '" + format_arg + "' (known: bundle, onnx)");
  if (!int8_weights.empty() && int8_weights != "shared" && int8_weights != "finetuned")
    throw base::UsageError("--int8-weights: unknown value '" + int8_weights +
                           "' (known: shared, finetuned)");
  if (cli.given("int8-max-loss") && !(int8_max_loss >= 0 && int8_max_loss <= 100))
    throw base::UsageError("--int8-max-loss must be in [0, 100] points");
  if (!precisions.empty() && !branches.empty() && branches != "all" && branches != "pareto")
    throw base::UsageError(
        "--precisions goes with --branches all or pareto; name an int8 twin NAME>int8");
  if (cli.given("qat-steps") && qat_steps < 0) throw base::UsageError("--qat-steps must be >= 0");
  torch::set_num_threads(1);

  const bool pareto = branches == "pareto";
  auto in = exporter::sources_from_checkpoints(checkpoints, pareto ? "all" : branches, precisions);
  auto& config = in.config;
  if (test_images > 0) config.data.limit_test = test_images;
  const auto [images, labels] = exporter::held_out_images(config, in.first);
  opts.model_name = config.name;
  if (std::any_of(in.sources.begin(), in.sources.end(), [](const auto& s) { return s.int8; })) {
    auto setup = exporter::int8_calibration(config, in.first);
    if (qat_steps >= 0) setup.options.qat_steps = qat_steps;
    if (!int8_weights.empty()) setup.options.shared_weights = int8_weights == "shared";
    if (int8_max_loss >= 0) setup.options.shared_max_loss = int8_max_loss;
    opts.calibration_images = setup.images;
    opts.calibration_labels = setup.labels;
    opts.quantization = setup.options;
    std::cout << "int8 branches: calibration on " << setup.images.size(0) << " training images, ";
    if (setup.options.shared_weights)
      std::cout << "then the fp32 twin's weights, quantized when prepared; "
                << setup.options.qat_steps << " quantization-aware fine-tuning steps for a twin "
                << "losing more than " << setup.options.shared_max_loss << " pt on them\n";
    else
      std::cout << "then " << setup.options.qat_steps
                << " quantization-aware fine-tuning steps each\n";
  }
  opts.class_names = in.first.class_names;
  opts.mean = in.first.normalize_mean;
  opts.std = in.first.normalize_std;
  std::cout << "profiling " << in.sources.size() << " branches on "
            << exporter::describe_device(opts.threads) << "\n";
  const auto r =
      pareto ? exporter::export_pareto_bundle(in.sources, images, labels, out_path, opts, std::cout)
             : exporter::export_bundle(in.sources, images, labels, out_path, opts, std::cout);
  std::printf(
      "wrote %s: %zu bytes; weights.bin %zu bytes = %.2fx the largest branch alone (%zu "
      "weight bytes); the branches as separate models: %zu bytes; %zu tensors shared, %zu "
      "weights used as slices of wider ones\n",
      out_path.c_str(), r.bundle_bytes, r.weights_file_bytes,
      static_cast<double>(r.weights_file_bytes) / r.largest_branch_bytes, r.largest_branch_bytes,
      r.separate_bytes, r.shared_tensors, r.sliced_tensors);
  return 0;
}

}  // namespace adascale::cli
