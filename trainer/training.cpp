#include "trainer/training.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "trainer/data_parallel.h"
#include "trainer/device.h"
#include "trainer/epoch_loop.h"
#include "trainer/progress.h"
#include "trainer/sync_batch_norm.h"

namespace adascale::trainer {
namespace {

const std::vector<std::string> kMetricColumns = {"epoch",          "lr",           "train_loss",
                                                 "train_accuracy", "val_loss",     "val_accuracy",
                                                 "images_per_s",   "epoch_seconds"};

// a path as the file system resolves it from here: absolute, "." and ".." and symbolic links
// resolved as far as the path exists, no trailing separator; "" stays "" (the default location)
std::string normalized_path(const std::string& path) {
  if (path.empty()) return path;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  if (ec) return fs::path(path).lexically_normal().string();
  fs::path canonical = fs::weakly_canonical(p, ec);
  p = (ec ? p : canonical).lexically_normal();
  if (p.has_relative_path() && !p.has_filename()) p = p.parent_path();
  return p.string();
}

}  // namespace

std::string comparable_config(TrainConfig c) {
  c.train.threads = 0;
  c.train.device.clear();
  c.data.workers = 0;
  c.source.clear();
  c.out_dir = normalized_path(c.out_dir);
  c.data.root = normalized_path(c.data.root);
  c.model.init = normalized_path(c.model.init);
  c.supernet.backbone = normalized_path(c.supernet.backbone);
  return c.to_ini();
}

void check_resumable(const Checkpoint& prev, const TrainConfig& config, const std::string& path) {
  const auto diff = first_difference(comparable_config(parse_config_text(prev.config_ini, path)),
                                     comparable_config(config));
  if (!diff.empty())
    throw ConfigError("cannot resume from " + path + ": its config differs at " + diff);
}

data::DatasetSpec dataset_spec(const DataConfig& d, const std::string& split) {
  data::DatasetSpec spec;
  spec.format = d.format;
  spec.root = d.root;
  spec.split = split;
  spec.image_size = d.image_size;
  spec.channels = d.channels;
  return spec;
}

RunData load_run_data(const TrainConfig& config) {
  RunData rd;
  auto train = data::open_dataset(dataset_spec(config.data, "train"));
  auto test = data::open_dataset(dataset_spec(config.data, "test"));
  if (config.data.limit_train > 0 && config.data.limit_train < train->size())
    train = train->subset(data::all_indices(config.data.limit_train));
  if (config.data.limit_test > 0 && config.data.limit_test < test->size())
    test = test->subset(data::all_indices(config.data.limit_test));
  if (train->shape().numel() != test->shape().numel() ||
      train->num_classes() != test->num_classes())
    throw data::DataError("train and test splits of '" + config.data.format +
                          "' disagree on image shape or class count");
  rd.train = train;
  rd.test = test;
  rd.split = data::split_indices(train->size(), config.data.validation_fraction, config.train.seed);
  rd.stats = data::channel_stats(*train, rd.split.train);
  return rd;
}

double learning_rate(const OptimConfig& o, int64_t step, int64_t steps_per_epoch) {
  const double warmup = o.warmup_epochs * steps_per_epoch;
  if (step < warmup) return o.lr * (step + 1) / warmup;
  const double total =
      static_cast<double>((o.schedule_epochs > 0 ? o.schedule_epochs : o.epochs) * steps_per_epoch);
  if (o.schedule == "cosine") {
    const double t = (step - warmup) / std::max(1.0, total - warmup);
    return o.lr * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, t)));
  }
  if (o.schedule == "step") {
    const int64_t epoch = step / std::max<int64_t>(1, steps_per_epoch);
    return o.lr * std::pow(o.gamma, static_cast<double>(epoch / o.step_size));
  }
  return o.lr;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimConfig& o,
                                                        std::vector<torch::Tensor> params) {
  if (o.optimizer == "sgd")
    return std::make_unique<torch::optim::SGD>(std::move(params),
                                               torch::optim::SGDOptions(o.lr)
                                                   .momentum(o.momentum)
                                                   .nesterov(o.nesterov && o.momentum > 0)
                                                   .weight_decay(o.weight_decay));
  if (o.optimizer == "adamw")
    return std::make_unique<torch::optim::AdamW>(
        std::move(params), torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  throw ConfigError("train.optimizer: unknown optimizer '" + o.optimizer + "'");
}

data::LoaderOptions eval_options(const DataConfig& d, const data::ChannelStats& stats) {
  data::LoaderOptions o;
  o.batch_size = 256;
  o.shuffle = false;
  o.normalize = stats;
  o.workers = d.workers;
  return o;
}

data::LoaderOptions train_options(const TrainConfig& config, const data::ChannelStats& stats,
                                  size_t train_size) {
  data::LoaderOptions o;
  o.batch_size = config.train.batch_size;
  o.shuffle = true;
  o.drop_last = train_size > static_cast<size_t>(config.train.batch_size);
  o.augment.crop_padding = config.data.crop_padding;
  o.augment.horizontal_flip = config.data.horizontal_flip;
  o.normalize = stats;
  o.workers = config.data.workers;
  o.seed = config.train.seed;
  return o;
}

torch::Tensor calibration_images(const RunData& rd, int64_t count, uint64_t seed,
                                 const data::ChannelStats& normalize) {
  return calibration_sample(rd, count, seed, normalize).first;
}

std::pair<torch::Tensor, torch::Tensor> calibration_sample(const RunData& rd, int64_t count,
                                                           uint64_t seed,
                                                           const data::ChannelStats& normalize) {
  data::LoaderOptions o;
  o.batch_size = std::min<int64_t>(count, static_cast<int64_t>(rd.split.train.size()));
  o.shuffle = true;
  o.normalize = normalize;
  o.workers = 0;
  o.seed = seed;
  data::BatchLoader loader(rd.train, rd.split.train, o);
  loader.start_epoch(0);
  auto batch = loader.next();
  return {batch->images, batch->labels};
}

EvalResult evaluate(Backbone& model, data::BatchLoader& loader, int64_t num_classes) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  EvalResult r;
  r.confusion = torch::zeros({num_classes, num_classes}, torch::kInt64);
  double loss_sum = 0.0;
  int64_t correct = 0;
  // batches go where the model is (a CUDA device with train.device)
  const auto params = model.parameters();
  const torch::Device device = params.empty() ? torch::kCPU : params[0].device();
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    auto logits = model.forward(to_device(batch->images, device));
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, to_device(batch->labels, device),
                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    auto pred = logits.argmax(1).to(torch::kCPU);
    correct += pred.eq(batch->labels).sum().item<int64_t>();
    r.confusion.index_put_({batch->labels, pred}, torch::ones_like(pred), /*accumulate=*/true);
    r.examples += batch->labels.size(0);
  }
  if (r.examples > 0) {
    r.loss = loss_sum / r.examples;
    r.accuracy = static_cast<double>(correct) / r.examples;
  }
  if (was_training) model.train();
  return r;
}

std::string format_confusion(const EvalResult& r, const std::vector<std::string>& names) {
  std::ostringstream o;
  const int64_t k = r.confusion.size(0);
  size_t name_w = 5;
  for (const auto& n : names) name_w = std::max(name_w, n.size());
  auto c = r.confusion.accessor<int64_t, 2>();
  o << "confusion matrix (rows: true class, columns: predicted class)\n";
  o << std::setw(static_cast<int>(name_w)) << ""
    << " ";
  for (int64_t j = 0; j < k; ++j) o << std::setw(6) << j;
  o << "  accuracy\n";
  for (int64_t i = 0; i < k; ++i) {
    const std::string name = i < static_cast<int64_t>(names.size()) ? names[i] : std::to_string(i);
    o << std::setw(static_cast<int>(name_w)) << name << " ";
    int64_t row = 0;
    for (int64_t j = 0; j < k; ++j) {
      o << std::setw(6) << c[i][j];
      row += c[i][j];
    }
    o << "  " << std::fixed << std::setprecision(1) << std::setw(6)
      << (row ? 100.0 * c[i][i] / row : 0.0) << "%\n";
  }
  return o.str();
}

void ensure_writable_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw ConfigError("output folder '" + dir + "' cannot be created: " + ec.message());
  const auto probe = std::filesystem::path(dir) / ".write-probe";
  {
    std::ofstream f(probe);
    if (!f || !(f << "ok") || !f.flush())
      throw ConfigError("output folder '" + dir + "' is not writable");
  }
  std::filesystem::remove(probe, ec);
}

void recalibrate_batchnorm(Backbone& model, const torch::Tensor& images, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  std::vector<torch::nn::BatchNorm2dImpl*> bns;
  for (auto& m : model.modules(/*include_self=*/false))
    if (auto* bn = m->as<torch::nn::BatchNorm2d>()) bns.push_back(bn);
  std::vector<c10::optional<double>> momenta;
  for (auto* bn : bns) {
    momenta.push_back(bn->options.momentum());
    bn->reset_running_stats();
    bn->options.momentum(c10::nullopt);  // cumulative moving average: the exact mean over batches
  }
  const bool was_training = model.is_training();
  model.train();
  for (int64_t b = 0; b < images.size(0); b += batch_size)
    model.forward(images.slice(0, b, std::min(images.size(0), b + batch_size)));
  for (size_t i = 0; i < bns.size(); ++i) bns[i]->options.momentum(momenta[i]);
  model.train(was_training);
}

HeldOutData held_out_data(const TrainConfig& config, const Checkpoint& ckpt) {
  HeldOutData d;
  d.set = data::open_dataset(dataset_spec(config.data, "test"));
  if (config.data.limit_test > 0 && config.data.limit_test < d.set->size())
    d.set = d.set->subset(data::all_indices(config.data.limit_test));
  d.options = eval_options(config.data, {ckpt.normalize_mean, ckpt.normalize_std});
  return d;
}

std::shared_ptr<Backbone> load_backbone(const Checkpoint& ckpt, const std::string& origin) {
  TrainConfig config = parse_config_text(ckpt.config_ini, origin + " (stored config)");
  if (ckpt.input_shape.size() != 3) throw CheckpointError(origin + ": bad input_shape");
  std::shared_ptr<Backbone> model;
  try {
    model = make_backbone(config.model, ckpt.spec, ckpt.input_shape[0],
                          static_cast<int64_t>(ckpt.class_names.size()));
  } catch (const ConfigError& e) {  // the spec or the config: name the checkpoint
    throw ConfigError(origin + ": " + e.what());
  }
  load_module_state(*model, ckpt.tensors, origin);
  model->eval();
  return model;
}

namespace {

// the model a run starts from: the config's (or spec_json's) architecture from the seed, or the
// checkpoint model.init names; *lineage: the compression operators behind it
std::shared_ptr<Backbone> initial_model(const TrainConfig& config, const RunData& rd,
                                        const std::string& spec_json, std::string* lineage) {
  const auto shape = rd.train->shape();
  const int64_t classes = rd.train->num_classes();
  if (config.model.init.empty())
    return make_backbone(config.model, spec_json, shape.channels, classes);
  const Checkpoint init = read_checkpoint(config.model.init);
  if (init.input_shape != std::vector<int64_t>{shape.channels, shape.height, shape.width} ||
      static_cast<int64_t>(init.class_names.size()) != classes)
    throw ConfigError("model.init '" + config.model.init +
                      "' was trained on another input shape or class count");
  std::shared_ptr<Backbone> model;
  try {
    model = load_backbone(init, config.model.init);
  } catch (const ConfigError& e) {  // e.g. a multi-branch checkpoint: pick one of its branches
    throw ConfigError("model.init '" + config.model.init + "': " + e.what());
  }
  model->train();
  *lineage = init.lineage;
  return model;
}

// what every checkpoint of the run carries besides weights, optimizer and metrics
Checkpoint checkpoint_of(const TrainConfig& config, const RunData& rd, const Backbone& model,
                         const std::string& lineage) {
  const auto shape = rd.train->shape();
  Checkpoint ck;
  ck.config_ini = config.to_ini();
  ck.architecture = model.describe();
  ck.spec = model.spec_json();
  ck.lineage = lineage;
  ck.input_shape = {shape.channels, shape.height, shape.width};
  ck.class_names = rd.train->class_names();
  ck.normalize_mean = rd.stats.mean;
  ck.normalize_std = rd.stats.std;
  ck.metric_columns = kMetricColumns;
  return ck;
}

// the final evaluation on the held-out test split, logged and written into the checkpoint
EvalResult final_test(const TrainConfig& config, const RunData& rd, Backbone& model, Checkpoint* ck,
                      const std::string& path, std::ostream& log) {
  data::BatchLoader test_loader(rd.test, data::all_indices(rd.test->size()),
                                eval_options(config.data, rd.stats));
  const auto test = evaluate(model, test_loader, rd.train->num_classes());
  log << "test: accuracy " << std::fixed << std::setprecision(2) << 100.0 * test.accuracy
      << "%  loss " << std::setprecision(4) << test.loss << "  (" << test.examples << " images)\n";
  ck->tensors = module_state(model);
  ck->test_accuracy = test.accuracy;
  ck->test_loss = test.loss;
  write_checkpoint(*ck, path);
  return test;
}

}  // namespace

TrainOutcome train(const TrainConfig& config, bool resume, std::ostream& log, int64_t stop_after,
                   const std::string& spec_json) {
  config.validate();
  ensure_writable_dir(config.out_dir);
  const std::string ckpt_path = (std::filesystem::path(config.out_dir) / kCheckpointName).string();
  torch::set_num_threads(config.train.threads);

  RunData rd = load_run_data(config);
  const auto shape = rd.train->shape();
  const int64_t classes = rd.train->num_classes();
  require_same_run(config, rd);
  RankGroup* group = current_group();
  const bool leader = current_rank() == 0;

  torch::manual_seed(config.train.seed);
  std::string lineage;
  auto model = initial_model(config, rd, spec_json, &lineage);
  const auto cost = measure_cost(*model, shape.channels, shape.height, shape.width);
  const torch::Device device = training_device(config, current_local_rank());
  model->to(device);
  auto optimizer = make_optimizer(config.train, model->parameters());
  Checkpoint ck = checkpoint_of(config, rd, *model, lineage);

  // with ranks, rank 0's checkpoint is the one that counts: it alone writes them
  int64_t start_epoch = 0;
  std::string optimizer_archive;
  if (resume && leader && std::filesystem::exists(ckpt_path)) {
    Checkpoint prev = read_checkpoint(ckpt_path);
    check_resumable(prev, config, ckpt_path);
    load_module_state(*model, prev.tensors, ckpt_path);
    optimizer_archive = prev.optimizer_archive;
    start_epoch = prev.epoch;
    ck.metrics = prev.metrics;
    log << "resuming from " << ckpt_path << " after epoch " << start_epoch << "\n";
  }
  if (group) {
    start_epoch = std::stoll(group->share("resume epoch", std::to_string(start_epoch)));
    optimizer_archive = group->share("optimizer", optimizer_archive);
    broadcast_module(*model);  // parameters start identical
  }
  if (!optimizer_archive.empty()) {
    deserialize_optimizer(*optimizer, optimizer_archive);
    move_optimizer_state(*optimizer, device);
  }

  log << "model: " << model->describe() << ", " << cost.params << " params, " << std::fixed
      << std::setprecision(2) << cost.macs / 1e6 << " M MACs\n"
      << "data: " << rd.split.train.size() << " train, " << rd.split.validation.size()
      << " validation, " << rd.test->size() << " test images of " << shape.channels << "x"
      << shape.height << "x" << shape.width << ", " << classes << " classes\n";

  auto loader_options = shard_of(train_options(config, rd.stats, rd.split.train.size()));
  loader_options.pin_memory = device.is_cuda();  // the copy to the device runs asynchronously
  data::BatchLoader train_loader(rd.train, rd.split.train, loader_options);
  const int64_t steps_per_epoch = train_loader.batches_per_epoch();
  auto reducer = make_reducer(model->parameters(), /*single_backward=*/true);
  std::unique_ptr<SyncBatchNormScope> sync_bn;
  if (reducer && config.train.batchnorm == "synchronized")
    sync_bn = std::make_unique<SyncBatchNormScope>(*group);
  log << describe_ranks(config, reducer.get(), sync_bn != nullptr);

  // each rank validates its part of the split; the results are summed
  std::unique_ptr<data::BatchLoader> val_loader;
  if (!rd.split.validation.empty())
    val_loader = std::make_unique<data::BatchLoader>(rd.train, shard_of(rd.split.validation),
                                                     eval_options(config.data, rd.stats));
  auto ce_options = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(
      config.train.label_smoothing);

  TrainOutcome outcome;
  outcome.checkpoint_path = ckpt_path;
  double step_seconds_total = 0.0;
  int64_t images_total = 0;
  const int64_t end_epoch =
      stop_after > 0 ? std::min(config.train.epochs, stop_after) : config.train.epochs;
  double lr = 0.0;
  EpochLoop loop;
  loop.label = "epoch";
  loop.epochs = config.train.epochs;
  loop.before_epoch = [&] { model->train(); };
  loop.step = [&](const data::Batch& batch, const StepPosition& pos) {
    lr = learning_rate(config.train, pos.global(), steps_per_epoch);
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
    // this rank's share of the global batch weighs its gradients
    const double weight = static_cast<double>(batch.labels.size(0)) /
                          static_cast<double>(train_loader.global_rows(pos.step));
    if (sync_bn) sync_bn->set_weight(weight);
    if (group)
      group->set_activity("epoch " + std::to_string(pos.epoch + 1) + ", step " +
                          std::to_string(pos.step + 1));
    const auto images = to_device(batch.images, device), labels = to_device(batch.labels, device);
    auto logits = model->forward(images);
    auto loss = torch::nn::functional::cross_entropy(logits, labels, ce_options);
    const double loss_value = loss.item<double>();
    pos.check_finite(loss_value, lr);
    optimizer->zero_grad();
    if (reducer) reducer->arm(weight);
    loss.backward();
    if (reducer) reducer->finish(weight);
    optimizer->step();
    return StepResult{loss_value, logits.argmax(1).eq(labels).sum().item<int64_t>(),
                      batch.labels.size(0)};
  };
  loop.after_epoch = [&](const EpochResult& local) {
    const EpochResult r = reduce_epoch(local);
    step_seconds_total += r.step_seconds;
    images_total += r.images;
    EvalResult val;
    if (group) {
      group->set_activity("validation after epoch " + std::to_string(r.epoch + 1));
      require_same_parameters("the parameters after epoch " + std::to_string(r.epoch + 1), *model);
      broadcast_module(*model);  // BatchNorm's running statistics: rank 0's, as DDP keeps them
    }
    if (val_loader) val = reduce_eval(evaluate(*model, *val_loader, classes));
    const double ips = r.step_seconds > 0 ? r.images / r.step_seconds : 0.0;
    log << "epoch " << std::setw(3) << r.epoch + 1 << "/" << config.train.epochs << std::fixed
        << std::setprecision(4) << "  lr " << lr << "  train loss " << r.loss << " acc "
        << std::setprecision(2) << 100.0 * r.accuracy << "%";
    if (val_loader)
      log << "  val loss " << std::setprecision(4) << val.loss << " acc " << std::setprecision(2)
          << 100.0 * val.accuracy << "%";
    log << "  " << std::setprecision(0) << ips << " img/s  " << format_duration(r.epoch_seconds)
        << std::endl;
    ck.metrics.push_back({double(r.epoch + 1), lr, r.loss, r.accuracy, val_loader ? val.loss : -1.0,
                          val_loader ? val.accuracy : -1.0, ips, r.epoch_seconds});
    ck.epoch = r.epoch + 1;
    if (leader) {
      ck.tensors = module_state(*model);
      ck.optimizer_archive = serialize_optimizer(*optimizer);
      write_checkpoint(ck, ckpt_path);
    }
    ++outcome.epochs_run;
  };
  loop.run(train_loader, start_epoch, end_epoch);

  outcome.train_seconds = step_seconds_total;
  outcome.images_per_second = step_seconds_total > 0 ? images_total / step_seconds_total : 0.0;
  if (reducer && reducer->steps() > 0)
    log << "allreduce: " << std::fixed << std::setprecision(2)
        << 1e3 * reducer->exposed_seconds() / reducer->steps()
        << " ms per step not hidden behind compute (" << reducer->steps() << " steps)\n";
  if (!leader) return outcome;  // rank 0 tests and writes the final checkpoint
  if (end_epoch < config.train.epochs) {
    log << "stopped after epoch " << end_epoch << " of " << config.train.epochs
        << "; continue with --resume\n";
    return outcome;
  }
  if (outcome.epochs_run == 0) {  // resumed after the last epoch: the checkpoint's weights
    Checkpoint prev = read_checkpoint(ckpt_path);
    load_module_state(*model, prev.tensors, ckpt_path);
    ck.metrics = prev.metrics;
    ck.epoch = prev.epoch;
    ck.optimizer_archive = prev.optimizer_archive;
  }
  outcome.test = final_test(config, rd, *model, &ck, ckpt_path, log);
  return outcome;
}

}  // namespace adascale::trainer
