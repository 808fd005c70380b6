// adascale: the server-side command line.
//   adascale train --config configs/X.ini [--resume] [--section.key value ...]
//   adascale eval  --checkpoint runs/X/checkpoint.h5 [--split test|validation] [--threads N]
// Errors are one line on stderr; exit code 2 for bad usage or config, 1 for everything else.
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "export/bundle_exporter.h"
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
    "        [--branches all|NAME,...] [--csv] [--latency-runs N]\n"
    "        accuracy, loss and confusion matrix of a checkpoint; --branches: one row per branch\n"
    "        of a multi-branch checkpoint (accuracy, MACs, params, weight bytes, LibTorch "
    "latency)\n"
    "  compress --checkpoint FILE --ops OPS --out FILE [--calibration N] [--threads N]\n"
    "        [--finetune-epochs N] [--finetune-lr LR]\n"
    "        physically compress a trained ResNet: OPS is an ordered list such as\n"
    "        prune:0.5,lowrank:0.25 or prune:0.75,dpconv@2/3 or fire:0.25\n"
    "  export --checkpoint FILE [--checkpoint FILE ...] --out DIR.bundle [--threads N]\n"
    "        [--branches all|pareto|NAME,...] [--parity-images N] [--test-images N]\n"
    "        [--latency-runs N]\n"
    "        one bundle, one branch per checkpoint (the backbone and its compressed variants) or\n"
    "        per chosen branch of a multi-branch checkpoint, each profiled in the runtime and\n"
    "        checked for parity against LibTorch\n";

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

// branches of a multi-branch checkpoint named by --branches: all, pareto (accuracy vs MACs from
// the results stored at training time) or a comma-separated list of canonical names
std::vector<size_t> select_branches(const trainer::Supernet& net, const std::string& text,
                                    bool allow_pareto) {
  std::vector<size_t> out;
  if (text == "all") {
    for (size_t b = 0; b < net.branch_count(); ++b) out.push_back(b);
    return out;
  }
  if (text == "pareto" && allow_pareto) {
    std::vector<double> acc(net.branch_count(), -1.0);
    const auto spec = nlohmann::json::parse(net.spec_json());
    if (spec.contains("training"))
      for (const auto& r : spec["training"].at("branches")) {
        const int b = net.space().find(r.at("name").get<std::string>());
        if (b >= 0) acc[b] = r.at("accuracy").get<double>();
      }
    for (size_t b = 0; b < net.branch_count(); ++b) {
      bool dominated = false;
      for (size_t q = 0; q < net.branch_count(); ++q)
        dominated =
            dominated || (q != b && net.branch_macs(q) <= net.branch_macs(b) && acc[q] >= acc[b] &&
                          (net.branch_macs(q) < net.branch_macs(b) || acc[q] > acc[b]));
      if (!dominated) out.push_back(b);
    }
    return out;
  }
  std::stringstream ss(text);
  std::string name;
  while (std::getline(ss, name, ',')) {
    const int b = net.space().find(name);
    if (b < 0) {
      std::string known;
      for (size_t i = 0; i < net.branch_count(); ++i) known += (i ? ", " : "") + net.branch(i).name;
      throw trainer::ConfigError("--branches: no branch '" + name + "' (branches: " + known + ")");
    }
    out.push_back(static_cast<size_t>(b));
  }
  if (out.empty()) throw UsageError("--branches is empty");
  return out;
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
  std::string ckpt_path, split = "test", data_root, branches;
  int threads = 2;
  bool csv = false;
  int64_t latency_runs = 200;
  po::options_description desc("eval");
  desc.add_options()("checkpoint", po::value(&ckpt_path)->required())(
      "branches", po::value(&branches)->default_value(""))("csv", po::bool_switch(&csv))(
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
  const auto chosen =
      net && !branches.empty() ? select_branches(*net, branches, false) : std::vector<size_t>{};
  auto config = trainer::parse_config_text(ckpt.config_ini, ckpt_path + " (stored config)");
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
          "%lld runs\n%-28s %9s %10s %9s %12s %12s\n",
          split.c_str(), static_cast<long long>(indices.size()),
          static_cast<long long>(latency_runs), "branch", "accuracy", "M MACs", "params",
          "weight bytes", "latency ms");
    for (size_t b : chosen) {
      const auto physical = net->physical(b);
      const auto r = trainer::evaluate(*physical, loader, set->num_classes());
      const auto cost = trainer::measure_cost(*physical, shape.channels, shape.height, shape.width);
      const double ms = libtorch_latency_ms(*physical, image, latency_runs);
      const auto bytes = static_cast<long long>(cost.params * sizeof(float));
      if (csv)
        std::printf("%s,%.6f,%lld,%lld,%lld,%.6f\n", net->branch(b).name.c_str(), r.accuracy,
                    static_cast<long long>(cost.macs), static_cast<long long>(cost.params), bytes,
                    ms);
      else
        std::printf("%-28s %8.2f%% %10.2f %9lld %12lld %12.3f\n", net->branch(b).name.c_str(),
                    100.0 * r.accuracy, cost.macs / 1e6, static_cast<long long>(cost.params), bytes,
                    ms);
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
  if (finetune_epochs < 0 || finetune_lr < 0) throw UsageError("fine-tuning values must be >= 0");
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
    std::filesystem::rename(outcome.checkpoint_path, out_path);
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
  std::string out_path, branches;
  exporter::ExportOptions opts;
  int64_t test_images = 0;
  po::options_description desc("export");
  desc.add_options()("checkpoint", po::value(&ckpt_paths)->required()->composing())(
      "out", po::value(&out_path)->required())(
      "threads", po::value(&opts.threads)->default_value(opts.threads))(
      "parity-images", po::value(&opts.parity_images)->default_value(opts.parity_images))(
      "test-images", po::value(&test_images)->default_value(0))(
      "latency-runs", po::value(&opts.latency_runs)->default_value(opts.latency_runs))(
      "branches", po::value(&branches)->default_value(""));
  parse_options(desc, args);
  if (opts.threads < 1) throw UsageError("--threads must be >= 1");
  if (opts.parity_images < 1) throw UsageError("--parity-images must be >= 1");
  if (opts.latency_runs < 1) throw UsageError("--latency-runs must be >= 1");
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
      for (size_t b : select_branches(*net, branches.empty() ? "all" : branches, true)) {
        auto m = net->materialize(b);
        sources.push_back({net->branch(b).name, m.spec, m.state});
      }
      continue;
    }
    sources.push_back({ckpt.lineage.empty() ? "backbone" : ckpt.lineage, resnet->spec(),
                       trainer::module_state(*resnet)});
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
  opts.class_names = first.class_names;
  opts.mean = first.normalize_mean;
  opts.std = first.normalize_std;
  std::cout << "profiling " << sources.size() << " branches on "
            << exporter::describe_device(opts.threads) << "\n";
  auto r =
      exporter::export_bundle(sources, torch::cat(xs), torch::cat(ys), out_path, opts, std::cout);
  std::printf(
      "wrote %s: %zu bytes; weights.bin %zu bytes = %.2fx the largest branch alone (%zu "
      "weight bytes); the branches as separate models: %zu bytes; %zu tensors shared\n",
      out_path.c_str(), r.bundle_bytes, r.weights_file_bytes,
      static_cast<double>(r.weights_file_bytes) / r.largest_branch_bytes, r.largest_branch_bytes,
      r.separate_bytes, r.shared_tensors);
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
