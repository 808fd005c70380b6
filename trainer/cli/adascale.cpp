// adascale: the server-side command line.
//   adascale train --config configs/X.ini [--resume] [--section.key value ...]
//   adascale eval  --checkpoint runs/X/checkpoint.h5 [--split test|validation] [--threads N]
// Errors are one line on stderr; exit code 2 for bad usage or config, 1 for everything else.
#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "base/durable_file.h"
#include "export/bundle_exporter.h"
#include "export/int8_quantizer.h"
#include "export/resnet_export.h"
#include "trainer/compression.h"
#include "trainer/progress.h"
#include "trainer/supernet.h"
#include "trainer/training.h"

namespace po = boost::program_options;
using namespace adascale;

namespace {

const char* kUsage =
    "usage: adascale <command> [options]\n"
    "commands:\n"
    "  train --config FILE [--resume] [--stop-after N] [--independent] [--section.key VALUE ...]\n"
    "        train the model a config describes; keys on the command line override the file\n"
    "        (shortcuts: --threads N, --epochs N, --seed N, --out DIR). A config with a\n"
    "        [supernet] section trains the multi-branch network; --independent trains each of\n"
    "        its branches as a model of its own instead, for comparison\n"
    "  eval  --checkpoint FILE [--split test|validation] [--threads N] [--data-root DIR]\n"
    "        [--branches all|NAME,...] [--precisions fp32,int8] [--csv] [--latency-runs N]\n"
    "        accuracy, loss and confusion matrix of a checkpoint; --branches: one row per branch\n"
    "        of a multi-branch checkpoint (accuracy, MACs, params, weight bytes, LibTorch "
    "latency)\n"
    "  compress --checkpoint FILE --ops OPS --out FILE [--calibration N] [--threads N]\n"
    "        [--finetune-epochs N] [--finetune-lr LR]\n"
    "        physically compress a trained ResNet: OPS is an ordered list such as\n"
    "        prune:0.5,lowrank:0.25 or prune:0.75,dpconv@2/3 or fire:0.25\n"
    "  export --checkpoint FILE [--checkpoint FILE ...] --out DIR.bundle [--threads N]\n"
    "        [--branches all|pareto|NAME,...] [--precisions fp32,int8] [--parity-images N]\n"
    "        [--test-images N] [--qat-steps N] [--int8-weights shared|finetuned]\n"
    "        [--int8-max-loss PT]\n"
    "        [--latency-runs N] [--latency-rounds N]\n"
    "        one bundle, one branch per checkpoint (the backbone and its compressed variants) or\n"
    "        per chosen branch of a multi-branch checkpoint, each profiled in the runtime and\n"
    "        checked for parity against LibTorch; int8 branches (NAME>int8, or --precisions)\n"
    "        are calibrated on training images, then quantize their fp32 twin's weights when\n"
    "        prepared or fine-tune a copy ([supernet] int8_* and qat_* keys; --int8-max-loss\n"
    "        overrides int8_shared_max_loss, the loss on those images that calls for "
    "fine-tuning)\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void parse_options(const po::options_description& desc, const std::vector<std::string>& args) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
}

int cmd_train(const std::vector<std::string>& args) {
  std::string config_path;
  bool resume = false, independent = false;
  int64_t stop_after = 0;
  std::vector<std::string> overrides;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config") {
      if (i + 1 >= args.size()) throw UsageError("--config needs a file");
      config_path = args[++i];
    } else if (args[i] == "--stop-after") {
      if (i + 1 >= args.size()) throw UsageError("--stop-after needs a number of epochs");
      try {
        stop_after = std::stoll(args[++i]);
      } catch (const std::exception&) {
        throw UsageError("--stop-after needs a number of epochs, got '" + args[i] + "'");
      }
      if (stop_after < 1) throw UsageError("--stop-after must be >= 1");
    } else if (args[i] == "--resume") {
      resume = true;
    } else if (args[i] == "--independent") {
      independent = true;
    } else {
      overrides.push_back(args[i]);
    }
  }
  if (config_path.empty()) throw UsageError("train needs --config FILE");
  auto config = trainer::load_config_file(config_path);
  trainer::apply_overrides(config, overrides);
  config.validate();
  std::cout << "config " << config_path << " -> " << config.out_dir << "\n";
  if (independent && !config.supernet.enabled())
    throw UsageError("--independent needs a config with a [supernet] branch space");
  if (config.supernet.enabled()) {
    if (resume || stop_after > 0)
      throw UsageError("--resume and --stop-after apply to single-model training only");
    if (independent) {
      trainer::train_independent(config, std::cout);
      return 0;
    }
    auto outcome = trainer::train_supernet(config, std::cout);
    std::cout << "checkpoint: " << outcome.checkpoint_path << "\n";
    return 0;
  }
  auto outcome = trainer::train(config, resume, std::cout, stop_after);
  std::cout << "checkpoint: " << outcome.checkpoint_path << "\n";
  if (outcome.epochs_run > 0)
    std::cout << "training throughput: " << static_cast<int64_t>(outcome.images_per_second)
              << " images/s over " << trainer::format_duration(outcome.train_seconds)
              << " of training steps\n";
  return 0;
}

// the test split of a checkpoint's dataset, normalized as in training
struct EvalData {
  data::DatasetPtr set;
  data::LoaderOptions options;
};

EvalData test_data(const trainer::Checkpoint& ckpt, const trainer::TrainConfig& config) {
  EvalData d;
  d.set = data::open_dataset(trainer::dataset_spec(config.data, "test"));
  if (config.data.limit_test > 0 && config.data.limit_test < d.set->size())
    d.set = d.set->subset(data::all_indices(config.data.limit_test));
  d.options.batch_size = 256;
  d.options.shuffle = false;
  d.options.normalize = {ckpt.normalize_mean, ckpt.normalize_std};
  d.options.workers = config.data.workers;
  return d;
}

// precisions named by --precisions ("" keeps `fallback`)
std::vector<std::string> parse_precisions(const std::string& text,
                                          const std::vector<std::string>& fallback) {
  if (text.empty()) return fallback;
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string p;
  while (std::getline(ss, p, ',')) {
    if (p != "fp32" && p != "int8")
      throw UsageError("--precisions: unknown precision '" + p + "' (known: fp32, int8)");
    if (std::find(out.begin(), out.end(), p) != out.end())
      throw UsageError("--precisions: '" + p + "' is listed twice");
    out.push_back(p);
  }
  if (out.empty()) throw UsageError("--precisions is empty");
  return out;
}

// --precisions multiplies all / pareto; a named list says each branch's precision itself
void check_precisions_use(const std::string& branches, const std::string& precisions) {
  if (!precisions.empty() && !branches.empty() && branches != "all" && branches != "pareto")
    throw UsageError(
        "--precisions goes with --branches all or pareto; name an int8 twin NAME>int8");
}

// branches of a multi-branch checkpoint named by --branches: all, pareto (accuracy vs MACs from
// the results stored at training time) or a comma-separated list of canonical names ("NAME>int8"
// for an int8 twin); all and pareto come in every one of `precisions`
std::vector<trainer::BranchRef> select_branches(const trainer::Supernet& net,
                                                const std::string& text, bool allow_pareto,
                                                const std::vector<std::string>& precisions) {
  if (text == "all") return net.space().deployable(precisions);
  if (text == "pareto" && allow_pareto) {
    std::vector<double> acc(net.branch_count(), -1.0);
    const auto spec = nlohmann::json::parse(net.spec_json());
    if (spec.contains("training"))
      for (const auto& r : spec["training"].at("branches")) {
        const int b = net.space().find(r.at("name").get<std::string>());
        if (b >= 0) acc[b] = r.at("accuracy").get<double>();
      }
    auto dominated = [&](size_t b) {
      for (size_t q = 0; q < net.branch_count(); ++q)
        if (q != b && net.branch_macs(q) <= net.branch_macs(b) && acc[q] >= acc[b] &&
            (net.branch_macs(q) < net.branch_macs(b) || acc[q] > acc[b]))
          return true;
      return false;
    };
    std::vector<trainer::BranchRef> out;
    for (const auto& ref : net.space().deployable(precisions))
      if (!dominated(ref.branch)) out.push_back(ref);
    return out;
  }
  std::vector<trainer::BranchRef> out;
  std::stringstream ss(text);
  std::string name;
  while (std::getline(ss, name, ',')) {
    trainer::BranchRef ref;
    if (!net.space().resolve(name, &ref)) {
      std::string known;
      for (size_t i = 0; i < net.branch_count(); ++i) known += (i ? ", " : "") + net.branch(i).name;
      throw trainer::ConfigError("--branches: no branch '" + name + "' (branches: " + known +
                                 ", each also as NAME>int8)");
    }
    out.push_back(ref);
  }
  if (out.empty()) throw UsageError("--branches is empty");
  return out;
}

// calibration / fine-tuning images of int8 branches: a seeded sample of the training split,
// normalized like the checkpoint, and the [supernet] qat settings of its config
struct Int8Setup {
  torch::Tensor images, labels;
  exporter::QuantizationOptions options;
};
Int8Setup int8_setup(const trainer::TrainConfig& config, const trainer::Checkpoint& ckpt) {
  Int8Setup s;
  const auto& sc = config.supernet;
  s.options.calibration_images = sc.qat_images;
  s.options.qat_steps = sc.qat_steps;
  s.options.shared_weights = sc.int8_weights == "shared";
  s.options.shared_max_loss = sc.int8_shared_max_loss;
  s.options.qat_lr = sc.qat_lr;
  s.options.percentile = sc.qat_percentile;
  s.options.seed = config.train.seed;
  const auto rd = trainer::load_run_data(config);
  std::tie(s.images, s.labels) = trainer::calibration_sample(
      rd, sc.qat_images, config.train.seed + 17, {ckpt.normalize_mean, ckpt.normalize_std});
  return s;
}

// median batch-1 latency of a LibTorch module on one thread, after a warm-up
double libtorch_latency_ms(trainer::Backbone& model, const torch::Tensor& image, int64_t runs) {
  torch::NoGradGuard no_grad;
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  for (int i = 0; i < 10; ++i) model.forward(image);
  std::vector<double> ms;
  for (int64_t i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    model.forward(image);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  torch::set_num_threads(threads);
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

int cmd_eval(const std::vector<std::string>& args) {
  std::string ckpt_path, split = "test", data_root, branches, precisions;
  int threads = 2;
  bool csv = false;
  int64_t latency_runs = 200;
  po::options_description desc("eval");
  desc.add_options()("checkpoint", po::value(&ckpt_path)->required())(
      "branches", po::value(&branches)->default_value(""))(
      "precisions", po::value(&precisions)->default_value(""))("csv", po::bool_switch(&csv))(
      "latency-runs", po::value(&latency_runs)->default_value(latency_runs))(
      "split", po::value(&split)->default_value(split))(
      "threads", po::value(&threads)->default_value(threads))(
      "data-root", po::value(&data_root)->default_value(""));
  parse_options(desc, args);
  if (split != "test" && split != "validation")
    throw UsageError("--split must be test or validation");
  if (threads < 1) throw UsageError("--threads must be >= 1");
  if (latency_runs < 1) throw UsageError("--latency-runs must be >= 1");
  if (csv && branches.empty()) throw UsageError("--csv goes with --branches");
  torch::set_num_threads(threads);
  auto ckpt = trainer::read_checkpoint(ckpt_path);
  auto model = trainer::load_model(ckpt, ckpt_path);
  auto net = std::dynamic_pointer_cast<trainer::Supernet>(model);
  if (!branches.empty() && !net)
    throw UsageError("--branches needs a multi-branch checkpoint; " + ckpt_path + " holds " +
                     ckpt.architecture);
  auto config = trainer::parse_config_text(ckpt.config_ini, ckpt_path + " (stored config)");
  check_precisions_use(branches, precisions);
  const auto chosen = net && !branches.empty()
                          ? select_branches(*net, branches, false,
                                            parse_precisions(precisions, net->space().precisions))
                          : std::vector<trainer::BranchRef>{};
  if (!data_root.empty()) config.data.root = data_root;
  auto data = test_data(ckpt, config);
  data::DatasetPtr set = data.set;
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
  data::BatchLoader loader(set, indices, data.options);
  if (!chosen.empty()) {
    loader.start_epoch(0);
    const auto image = loader.next()->images.slice(0, 0, 1);
    if (csv)
      std::printf("branch,accuracy,macs,params,weight_bytes,libtorch_latency_ms\n");
    else
      std::printf(
          "%s split, %lld images; latency: LibTorch eager, batch 1, 1 thread, median of "
          "%lld runs\n%-34s %9s %10s %9s %12s %12s\n",
          split.c_str(), static_cast<long long>(indices.size()),
          static_cast<long long>(latency_runs), "branch", "accuracy", "M MACs", "params",
          "weight bytes", "latency ms");
    std::optional<Int8Setup> int8;
    for (const auto& ref : chosen) {
      const auto physical = net->physical(ref.branch);
      const auto cost = trainer::measure_cost(*physical, shape.channels, shape.height, shape.width);
      double accuracy = 0, ms = std::nan("");
      auto bytes = static_cast<long long>(cost.params * sizeof(float));
      if (ref.int8) {
        // the int8 twin as the exporter builds it; accuracy of its fake-quant LibTorch model
        if (!int8) int8 = int8_setup(config, ckpt);
        const auto m = net->materialize(ref.branch);
        BundleWriter int8_tensors;
        exporter::TensorStore int8_store(int8_tensors);
        std::ostringstream log;
        const auto twin = exporter::make_int8_twin(m.spec, m.state, ref.name, int8->images,
                                                   int8->labels, int8->options, int8_store, log);
        const exporter::TorchBranch& fq = *twin.model;
        // what the prepared twin holds (int8 weights derived from shared ones included)
        DerivedWeights derived;
        const Status s = derive_weights(twin.graph, int8_tensors.constants(), false, &derived);
        if (!s.ok()) throw std::runtime_error("eval: " + s.message);
        bytes = static_cast<long long>(used_weight_bytes(derived));
        torch::NoGradGuard no_grad;
        int64_t correct = 0, total = 0;
        loader.start_epoch(0);
        while (auto batch = loader.next()) {
          correct +=
              fq.forward(batch->images, true).argmax(1).eq(batch->labels).sum().item<int64_t>();
          total += batch->labels.size(0);
        }
        accuracy = static_cast<double>(correct) / static_cast<double>(total);
      } else {
        accuracy = trainer::evaluate(*physical, loader, set->num_classes()).accuracy;
        ms = libtorch_latency_ms(*physical, image, latency_runs);
      }
      // int8 latency: the runtime's, measured by export (LibTorch has no kernel for this graph)
      if (csv)
        std::printf("%s,%.6f,%lld,%lld,%lld,%s\n", ref.name.c_str(), accuracy,
                    static_cast<long long>(cost.macs), static_cast<long long>(cost.params), bytes,
                    std::isnan(ms) ? "" : std::to_string(ms).c_str());
      else
        std::printf("%-34s %8.2f%% %10.2f %9lld %12lld %12s\n", ref.name.c_str(), 100.0 * accuracy,
                    cost.macs / 1e6, static_cast<long long>(cost.params), bytes,
                    std::isnan(ms) ? "export" : std::to_string(ms).substr(0, 6).c_str());
    }
    return 0;
  }
  auto r = trainer::evaluate(*model, loader, set->num_classes());
  std::printf("checkpoint %s: %s, epoch %lld\n", ckpt_path.c_str(), ckpt.architecture.c_str(),
              static_cast<long long>(ckpt.epoch));
  std::printf("%s split: accuracy %.2f%%  loss %.4f  (%lld images)\n", split.c_str(),
              100.0 * r.accuracy, r.loss, static_cast<long long>(r.examples));
  std::cout << trainer::format_confusion(r, ckpt.class_names);
  return 0;
}

int cmd_compress(const std::vector<std::string>& args) {
  std::string ckpt_path, ops_text, out_path;
  int threads = 2;
  int64_t calibration = 1024;
  int64_t finetune_epochs = 0;
  double finetune_lr = 0.0;
  po::options_description desc("compress");
  desc.add_options()("checkpoint", po::value(&ckpt_path)->required())(
      "ops", po::value(&ops_text)->required())("out", po::value(&out_path)->required())(
      "calibration", po::value(&calibration)->default_value(calibration))(
      "threads", po::value(&threads)->default_value(threads))(
      "finetune-epochs", po::value(&finetune_epochs)->default_value(0))(
      "finetune-lr", po::value(&finetune_lr)->default_value(0.0));
  parse_options(desc, args);
  if (threads < 1) throw UsageError("--threads must be >= 1");
  if (finetune_epochs < 0 || !(finetune_lr >= 0) || !std::isfinite(finetune_lr))
    throw UsageError("fine-tuning values must be finite and >= 0");
  if (calibration < 16) throw UsageError("--calibration needs at least 16 images");
  const auto ops = trainer::parse_compress_ops(ops_text);
  torch::set_num_threads(threads);
  auto ckpt = trainer::read_checkpoint(ckpt_path);
  auto config = trainer::parse_config_text(ckpt.config_ini, ckpt_path + " (stored config)");
  auto model = trainer::load_model(ckpt, ckpt_path);
  auto* resnet = dynamic_cast<trainer::ResNet*>(model.get());
  if (!resnet)
    throw trainer::ConfigError(ckpt_path + ": compression needs a resnet checkpoint, this is " +
                               ckpt.architecture);

  // calibration images: a seeded sample of the training split, normalized, no augmentation
  auto rd = trainer::load_run_data(config);
  auto cal = trainer::calibration_images(rd, calibration, config.train.seed,
                                         {ckpt.normalize_mean, ckpt.normalize_std});

  auto eval_data = test_data(ckpt, config);
  const auto shape = eval_data.set->shape();
  auto measure = [&](trainer::Backbone& m) {
    data::BatchLoader loader(eval_data.set, data::all_indices(eval_data.set->size()),
                             eval_data.options);
    auto r = trainer::evaluate(m, loader, eval_data.set->num_classes());
    auto c = trainer::measure_cost(m, shape.channels, shape.height, shape.width);
    return std::make_pair(r, c);
  };
  auto [before, before_cost] = measure(*model);
  trainer::CompressedResNet input{resnet->spec(), ckpt.tensors};
  auto result = trainer::apply_compress_ops(input, ops, cal, &std::cout);
  auto compressed = std::make_shared<trainer::ResNet>(result.spec);
  trainer::load_module_state(*compressed, result.state, "compressed model");
  trainer::recalibrate_batchnorm(*compressed, cal);
  compressed->eval();
  auto [after, after_cost] = measure(*compressed);

  trainer::Checkpoint out = ckpt;
  out.spec = result.spec.to_json();
  out.lineage = (ckpt.lineage.empty() ? "" : ckpt.lineage + ">") + trainer::canonical_ops_name(ops);
  out.architecture = result.spec.describe();
  out.tensors = trainer::module_state(*compressed);
  out.optimizer_archive.clear();
  out.test_accuracy = after.accuracy;
  out.test_loss = after.loss;
  trainer::write_checkpoint(out, out_path);
  if (finetune_epochs > 0) {
    // fine-tune from the compressed weights with the original recipe at a lower rate, then put
    // the result where the compressed checkpoint was (atomically)
    auto ft = config;
    ft.model.init = out_path;
    ft.train.epochs = finetune_epochs;
    ft.train.lr = finetune_lr > 0 ? finetune_lr : 0.1 * config.train.lr;
    ft.train.warmup_epochs = 0;
    ft.train.threads = threads;
    ft.out_dir = out_path + ".finetune";
    ft.source = "fine-tuning of " + out_path;
    std::cout << "fine-tuning " << finetune_epochs << " epochs at lr " << ft.train.lr << "\n";
    auto outcome = trainer::train(ft, false, std::cout);
    std::string error;
    if (!adascale::base::replace_path(outcome.checkpoint_path, out_path, &error))
      throw std::runtime_error(error);
    std::filesystem::remove_all(ft.out_dir);
    auto tuned = trainer::read_checkpoint(out_path);
    compressed = std::dynamic_pointer_cast<trainer::ResNet>(trainer::load_model(tuned, out_path));
    std::tie(after, after_cost) = measure(*compressed);
  }
  std::printf("%-12s %10s %10s %9s\n", "", "params", "M MACs", "test acc");
  std::printf("%-12s %10lld %10.2f %8.2f%%\n", "before", (long long)before_cost.params,
              before_cost.macs / 1e6, 100.0 * before.accuracy);
  std::printf("%-12s %10lld %10.2f %8.2f%%\n", "after", (long long)after_cost.params,
              after_cost.macs / 1e6, 100.0 * after.accuracy);
  std::printf("wrote %s (%s)\n", out_path.c_str(), out.architecture.c_str());
  return 0;
}

int cmd_export(const std::vector<std::string>& args) {
  std::vector<std::string> ckpt_paths;
  std::string out_path, branches, precisions;
  int64_t qat_steps = -1;
  double int8_max_loss = -1;
  std::string int8_weights;
  exporter::ExportOptions opts;
  int64_t test_images = 0;
  po::options_description desc("export");
  desc.add_options()("checkpoint", po::value(&ckpt_paths)->required()->composing())(
      "out", po::value(&out_path)->required())(
      "threads", po::value(&opts.threads)->default_value(opts.threads))(
      "parity-images", po::value(&opts.parity_images)->default_value(opts.parity_images))(
      "test-images", po::value(&test_images)->default_value(0))(
      "latency-runs", po::value(&opts.latency_runs)->default_value(opts.latency_runs))(
      "latency-rounds", po::value(&opts.latency_rounds)->default_value(opts.latency_rounds))(
      "branches", po::value(&branches)->default_value(""))(
      "precisions", po::value(&precisions)->default_value(""))(
      "qat-steps", po::value(&qat_steps)->default_value(qat_steps))(
      "int8-weights", po::value(&int8_weights)->default_value(""))(
      "int8-max-loss", po::value(&int8_max_loss)->default_value(int8_max_loss));
  parse_options(desc, args);
  if (!int8_weights.empty() && int8_weights != "shared" && int8_weights != "finetuned")
    throw UsageError("--int8-weights: unknown value '" + int8_weights +
                     "' (known: shared, finetuned)");
  if (int8_max_loss != -1 && !(int8_max_loss >= 0 && int8_max_loss <= 100))
    throw UsageError("--int8-max-loss must be in [0, 100] points");
  if (opts.threads < 1) throw UsageError("--threads must be >= 1");
  if (opts.parity_images < 1) throw UsageError("--parity-images must be >= 1");
  if (opts.latency_runs < 1) throw UsageError("--latency-runs must be >= 1");
  if (opts.latency_rounds < 1) throw UsageError("--latency-rounds must be >= 1");
  check_precisions_use(branches, precisions);
  torch::set_num_threads(1);

  std::vector<exporter::ExportSource> sources;
  trainer::Checkpoint first;
  for (const auto& path : ckpt_paths) {
    auto ckpt = trainer::read_checkpoint(path);
    auto model = trainer::load_model(ckpt, path);
    auto* resnet = dynamic_cast<trainer::ResNet*>(model.get());
    auto* net = dynamic_cast<trainer::Supernet*>(model.get());
    if (!net && !branches.empty())
      throw UsageError("--branches needs a multi-branch checkpoint; " + path + " holds " +
                       ckpt.architecture);
    if (!resnet && !net)
      throw trainer::ConfigError(path + ": export supports resnet checkpoints, this is " +
                                 ckpt.architecture);
    if (sources.empty()) {
      first = ckpt;
    } else if (ckpt.input_shape != first.input_shape || ckpt.class_names != first.class_names ||
               ckpt.normalize_mean != first.normalize_mean) {
      throw trainer::ConfigError(path + ": input shape, classes or normalization differ from " +
                                 ckpt_paths.front());
    }
    if (net) {
      for (const auto& ref :
           select_branches(*net, branches.empty() ? "all" : branches, true,
                           parse_precisions(precisions, net->space().precisions))) {
        auto m = net->materialize(ref.branch);
        sources.push_back({ref.name, m.spec, m.state, ref.int8});
      }
      continue;
    }
    const std::string name = ckpt.lineage.empty() ? "backbone" : ckpt.lineage;
    for (const auto& p : parse_precisions(precisions, {"fp32"}))
      sources.push_back({name + (p == "int8" ? ">int8" : ""), resnet->spec(),
                         trainer::module_state(*resnet), p == "int8"});
  }
  auto config = trainer::parse_config_text(first.config_ini, ckpt_paths.front());
  if (test_images > 0) config.data.limit_test = test_images;
  auto data = test_data(first, config);
  data::BatchLoader loader(data.set, data::all_indices(data.set->size()), data.options);
  std::vector<torch::Tensor> xs, ys;
  loader.start_epoch(0);
  while (auto b = loader.next()) {
    xs.push_back(b->images);
    ys.push_back(b->labels);
  }
  opts.model_name = config.name;
  if (std::any_of(sources.begin(), sources.end(), [](const auto& s) { return s.int8; })) {
    auto setup = int8_setup(config, first);
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
  opts.class_names = first.class_names;
  opts.mean = first.normalize_mean;
  opts.std = first.normalize_std;
  std::cout << "profiling " << sources.size() << " branches on "
            << exporter::describe_device(opts.threads) << "\n";
  auto r =
      exporter::export_bundle(sources, torch::cat(xs), torch::cat(ys), out_path, opts, std::cout);
  std::printf(
      "wrote %s: %zu bytes; weights.bin %zu bytes = %.2fx the largest branch alone (%zu "
      "weight bytes); the branches as separate models: %zu bytes; %zu tensors shared, %zu "
      "weights used as slices of wider ones\n",
      out_path.c_str(), r.bundle_bytes, r.weights_file_bytes,
      static_cast<double>(r.weights_file_bytes) / r.largest_branch_bytes, r.largest_branch_bytes,
      r.separate_bytes, r.shared_tensors, r.sliced_tensors);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  try {
    if (command == "train") return cmd_train(args);
    if (command == "eval") return cmd_eval(args);
    if (command == "compress") return cmd_compress(args);
    if (command == "export") return cmd_export(args);
    throw UsageError("unknown command '" + command + "'");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "adascale %s: %s\n%s", command.c_str(), e.what(), kUsage);
    return 2;
  } catch (const trainer::ConfigError& e) {
    std::fprintf(stderr, "adascale %s: %s\n", command.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    // torch errors carry a multi-line backtrace; keep the first line
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    std::fprintf(stderr, "adascale %s: %s\n", command.c_str(), what.c_str());
    return 1;
  }
}
