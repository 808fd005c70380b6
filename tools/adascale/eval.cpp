// adascale eval --checkpoint FILE [--branches all|NAME,...] [--precisions ...] [--csv] ...
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>

#include "base/command_line.h"
#include "export/checkpoint_export.h"
#include "supernet/model_loading.h"
#include "supernet/multi_branch_network.h"
#include "tools/adascale/commands.h"
#include "trainer/training.h"

namespace adascale::cli {
namespace {

void print_branch_row(bool csv, const std::string& name, double accuracy,
                      const trainer::ModelCost& cost, size_t bytes, double ms) {
  if (csv)
    std::printf("%s,%.6f,%lld,%lld,%zu,%s\n", name.c_str(), accuracy,
                static_cast<long long>(cost.macs), static_cast<long long>(cost.params), bytes,
                std::isnan(ms) ? "" : std::to_string(ms).c_str());
  else
    std::printf("%-34s %8.2f%% %10.2f %9lld %12zu %12s\n", name.c_str(), 100.0 * accuracy,
                cost.macs / 1e6, static_cast<long long>(cost.params), bytes,
                std::isnan(ms) ? "export" : std::to_string(ms).substr(0, 6).c_str());
}

}  // namespace

int run_eval(const std::vector<std::string>& args) {
  std::string ckpt_path, split = "test", data_root, branches, precisions;
  int threads = 2;
  bool csv = false;
  int64_t latency_runs = 200;
  base::CommandLine cli("adascale eval",
                        "accuracy, loss and confusion matrix of a checkpoint, or one row per "
                        "branch of a multi-branch checkpoint");
  cli.option("checkpoint", &ckpt_path, "the checkpoint", "FILE")
      .required("checkpoint")
      .option("branches", &branches,
              "all, or branch names (NAME>int8 for an int8 twin): one row each with accuracy,\n"
              "MACs, params, weight bytes and LibTorch latency",
              "LIST")
      .option("precisions", &precisions, "with --branches all: fp32, int8 or fp32,int8", "LIST")
      .flag("csv", &csv, "the branch rows as CSV")
      .option("latency-runs", &latency_runs, "timed batch-1 runs per branch")
      .range("latency-runs", 1)
      .option("split", &split, "test or validation", "NAME")
      .option("threads", &threads, "LibTorch threads")
      .range("threads", 1, 1024)
      .option("data-root", &data_root, "where the data set lives, if not where it was trained",
              "DIR");
  if (cli.parse(args) != base::CommandLine::Outcome::kRun) return 0;
  if (split != "test" && split != "validation")
    throw base::UsageError("--split must be test or validation");
  if (csv && branches.empty()) throw base::UsageError("--csv goes with --branches");
  if (!precisions.empty() && branches != "all")
    throw base::UsageError("--precisions goes with --branches all; name an int8 twin NAME>int8");
  torch::set_num_threads(threads);
  auto ckpt = trainer::read_checkpoint(ckpt_path);
  const bool multi = trainer::is_multi_branch_spec(ckpt.spec);
  const auto net = multi ? trainer::load_supernet(ckpt, ckpt_path) : nullptr;
  const auto model = multi ? net : trainer::load_model(ckpt, ckpt_path);
  if (!branches.empty() && !multi)
    throw base::UsageError("--branches needs a multi-branch checkpoint; " + ckpt_path + " holds " +
                           ckpt.architecture);
  auto config = trainer::parse_config_text(ckpt.config_ini, ckpt_path + " (stored config)");
  if (!data_root.empty()) config.data.root = data_root;
  const auto held_out = trainer::held_out_data(config, ckpt);
  data::DatasetPtr set = held_out.set;
  std::vector<int64_t> indices = data::all_indices(set->size());
  if (split == "validation") {
    auto rd = trainer::load_run_data(config);
    set = rd.train;
    indices = rd.split.validation;
  }
  const auto shape = set->shape();
  if (std::vector<int64_t>{shape.channels, shape.height, shape.width} != ckpt.input_shape ||
      set->num_classes() != static_cast<int64_t>(ckpt.class_names.size()))
    throw data::DataError("dataset '" + config.data.format +
                          "' does not match the checkpoint's input shape or class count");
  data::BatchLoader loader(set, indices, held_out.options);
  if (branches.empty()) {
    auto r = trainer::evaluate(*model, loader, set->num_classes());
    std::printf("checkpoint %s: %s, epoch %lld\n", ckpt_path.c_str(), ckpt.architecture.c_str(),
                static_cast<long long>(ckpt.epoch));
    std::printf("%s split: accuracy %.2f%%  loss %.4f  (%lld images)\n", split.c_str(),
                100.0 * r.accuracy, r.loss, static_cast<long long>(r.examples));
    std::cout << trainer::format_confusion(r, ckpt.class_names);
    return 0;
  }
  const auto chosen = trainer::select_branches(
      net->space(), branches,
      trainer::parse_precisions(precisions, net->space().precisions, "--precisions"));
  loader.start_epoch(0);
  const auto image = loader.next()->images.slice(0, 0, 1);
  if (csv)
    std::printf("branch,accuracy,macs,params,weight_bytes,libtorch_latency_ms\n");
  else
    std::printf(
        "%s split, %lld images; latency: LibTorch eager, batch 1, 1 thread, median of %lld "
        "runs\n%-34s %9s %10s %9s %12s %12s\n",
        split.c_str(), static_cast<long long>(indices.size()), static_cast<long long>(latency_runs),
        "branch", "accuracy", "M MACs", "params", "weight bytes", "latency ms");
  std::optional<exporter::Int8Calibration> int8;
  for (const auto& ref : chosen) {
    const auto physical = net->physical(ref.branch);
    const auto cost = trainer::measure_cost(*physical, shape.channels, shape.height, shape.width);
    if (ref.int8) {
      // the int8 twin as the exporter builds it; its latency is the runtime's (export measures
      // it: LibTorch has no kernel for this graph)
      if (!int8) int8 = exporter::int8_calibration(config, ckpt);
      const auto m = exporter::measure_int8_twin(*net, ref, *int8, loader);
      print_branch_row(csv, ref.name, m.accuracy, cost, m.weight_bytes, std::nan(""));
    } else {
      const double accuracy = trainer::evaluate(*physical, loader, set->num_classes()).accuracy;
      const double ms = trainer::median_latency_ms(*physical, image, latency_runs);
      print_branch_row(csv, ref.name, accuracy, cost, cost.params * sizeof(float), ms);
    }
  }
  return 0;
}

}  // namespace adascale::cli
