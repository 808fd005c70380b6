#include "trainer/config.h"

#include <boost/program_options.hpp>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace po = boost::program_options;

namespace adascale::trainer {
namespace {

// a seed is a non-negative integer; boost (lexical_cast) would wrap "-1" to 2^64 - 1
uint64_t parse_seed(const std::string& text, const std::string& key) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  const std::string digits = text.substr(begin, end - begin);
  bool ok = !digits.empty() && digits.size() <= 20 &&
            digits.find_first_not_of("0123456789") == std::string::npos;
  uint64_t value = 0;
  if (ok) {
    errno = 0;
    const unsigned long long v = std::strtoull(digits.c_str(), nullptr, 10);
    ok = errno != ERANGE;
    value = static_cast<uint64_t>(v);
  }
  if (!ok)
    throw ConfigError("config key '" + key + "' must be an integer in [0, " +
                      std::to_string(std::numeric_limits<uint64_t>::max()) + "], got '" + text +
                      "'");
  return value;
}

// every key, bound to its field; current values become the defaults so that a later parse only
// changes what it names.
po::options_description describe(TrainConfig& c) {
  po::options_description d("config");
  auto list = [](std::vector<int64_t>* target, const char* key) {
    return po::value<std::string>()
        ->default_value(join_int_list(*target))
        ->notifier([target, key](const std::string& s) { *target = parse_int_list(s, key); });
  };
  d.add_options()  //
      ("name", po::value(&c.name)->default_value(c.name))(
          "out", po::value(&c.out_dir)->default_value(c.out_dir))(
          "data.format", po::value(&c.data.format)->default_value(c.data.format))(
          "data.root", po::value(&c.data.root)->default_value(c.data.root))(
          "data.validation_fraction",
          po::value(&c.data.validation_fraction)->default_value(c.data.validation_fraction))(
          "data.crop_padding", po::value(&c.data.crop_padding)->default_value(c.data.crop_padding))(
          "data.horizontal_flip",
          po::value(&c.data.horizontal_flip)->default_value(c.data.horizontal_flip))(
          "data.workers", po::value(&c.data.workers)->default_value(c.data.workers))(
          "data.limit_train", po::value(&c.data.limit_train)->default_value(c.data.limit_train))(
          "data.limit_test", po::value(&c.data.limit_test)->default_value(c.data.limit_test))(
          "data.image_size", po::value(&c.data.image_size)->default_value(c.data.image_size))(
          "data.channels", po::value(&c.data.channels)->default_value(c.data.channels))(
          "model.arch", po::value(&c.model.arch)->default_value(c.model.arch))(
          "model.stem_width", po::value(&c.model.stem_width)->default_value(c.model.stem_width))(
          "model.widths", list(&c.model.widths, "model.widths"))(
          "model.depths", list(&c.model.depths, "model.depths"))(
          "model.expansion", po::value(&c.model.expansion)->default_value(c.model.expansion))(
          "model.init", po::value(&c.model.init)->default_value(c.model.init))(
          "train.epochs", po::value(&c.train.epochs)->default_value(c.train.epochs))(
          "train.batch_size", po::value(&c.train.batch_size)->default_value(c.train.batch_size))(
          "train.optimizer", po::value(&c.train.optimizer)->default_value(c.train.optimizer))(
          "train.lr", po::value(&c.train.lr)->default_value(c.train.lr))(
          "train.momentum", po::value(&c.train.momentum)->default_value(c.train.momentum))(
          "train.nesterov", po::value(&c.train.nesterov)->default_value(c.train.nesterov))(
          "train.weight_decay",
          po::value(&c.train.weight_decay)->default_value(c.train.weight_decay))(
          "train.schedule", po::value(&c.train.schedule)->default_value(c.train.schedule))(
          "train.step_size", po::value(&c.train.step_size)->default_value(c.train.step_size))(
          "train.gamma", po::value(&c.train.gamma)->default_value(c.train.gamma))(
          "train.warmup_epochs",
          po::value(&c.train.warmup_epochs)->default_value(c.train.warmup_epochs))(
          "train.schedule_epochs",
          po::value(&c.train.schedule_epochs)->default_value(c.train.schedule_epochs))(
          "train.label_smoothing",
          po::value(&c.train.label_smoothing)->default_value(c.train.label_smoothing))(
          "train.seed", po::value<std::string>()
                            ->default_value(std::to_string(c.train.seed))
                            ->notifier([&c](const std::string& v) {
                              c.train.seed = parse_seed(v, "train.seed");
                            }))("train.threads",
                                po::value(&c.train.threads)->default_value(c.train.threads))(
          "train.device", po::value(&c.train.device)->default_value(c.train.device))(
          "train.batchnorm", po::value(&c.train.batchnorm)->default_value(c.train.batchnorm))(
          "supernet.widths", po::value(&c.supernet.widths)->default_value(c.supernet.widths))(
          "supernet.ops", po::value(&c.supernet.ops)->default_value(c.supernet.ops))(
          "supernet.op_stages",
          po::value(&c.supernet.op_stages)->default_value(c.supernet.op_stages))(
          "supernet.exits", po::value(&c.supernet.exits)->default_value(c.supernet.exits))(
          "supernet.depths", po::value(&c.supernet.depths)->default_value(c.supernet.depths))(
          "supernet.backbone", po::value(&c.supernet.backbone)->default_value(c.supernet.backbone))(
          "supernet.joint_epochs",
          po::value(&c.supernet.joint_epochs)->default_value(c.supernet.joint_epochs))(
          "supernet.joint_lr", po::value(&c.supernet.joint_lr)->default_value(c.supernet.joint_lr))(
          "supernet.joint_schedule",
          po::value(&c.supernet.joint_schedule)->default_value(c.supernet.joint_schedule))(
          "supernet.depth_order",
          po::value(&c.supernet.depth_order)->default_value(c.supernet.depth_order))(
          "supernet.sampled", po::value(&c.supernet.sampled)->default_value(c.supernet.sampled))(
          "supernet.every_step",
          po::value(&c.supernet.every_step)->default_value(c.supernet.every_step))(
          "supernet.student_batch",
          po::value(&c.supernet.student_batch)->default_value(c.supernet.student_batch))(
          "supernet.student_threads",
          po::value(&c.supernet.student_threads)->default_value(c.supernet.student_threads))(
          "supernet.distill_weight",
          po::value(&c.supernet.distill_weight)->default_value(c.supernet.distill_weight))(
          "supernet.student_weight",
          po::value(&c.supernet.student_weight)->default_value(c.supernet.student_weight))(
          "supernet.exit_weight",
          po::value(&c.supernet.exit_weight)->default_value(c.supernet.exit_weight))(
          "supernet.exit_head",
          po::value(&c.supernet.exit_head)->default_value(c.supernet.exit_head))(
          "supernet.calibration_images",
          po::value(&c.supernet.calibration_images)->default_value(c.supernet.calibration_images))(
          "supernet.distill_steps",
          po::value(&c.supernet.distill_steps)->default_value(c.supernet.distill_steps))(
          "supernet.precisions",
          po::value(&c.supernet.precisions)->default_value(c.supernet.precisions))(
          "supernet.int8_weights",
          po::value(&c.supernet.int8_weights)->default_value(c.supernet.int8_weights))(
          "supernet.int8_shared_max_loss", po::value(&c.supernet.int8_shared_max_loss)
                                               ->default_value(c.supernet.int8_shared_max_loss))(
          "supernet.qat_images",
          po::value(&c.supernet.qat_images)->default_value(c.supernet.qat_images))(
          "supernet.qat_steps",
          po::value(&c.supernet.qat_steps)->default_value(c.supernet.qat_steps))(
          "supernet.qat_lr", po::value(&c.supernet.qat_lr)->default_value(c.supernet.qat_lr))(
          "supernet.qat_percentile",
          po::value(&c.supernet.qat_percentile)->default_value(c.supernet.qat_percentile));
  return d;
}

}  // namespace

namespace {

// parses INI text; *keys: how many keys the text sets
TrainConfig parse_config(const std::string& ini_text, const std::string& origin, size_t* keys) {
  TrainConfig c;
  c.source = origin;
  auto desc = describe(c);
  std::istringstream in(ini_text);
  try {
    po::variables_map vm;
    const auto parsed = po::parse_config_file(in, desc, /*allow_unregistered=*/false);
    if (keys) *keys = parsed.options.size();
    po::store(parsed, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(origin + ": " + e.what());
  } catch (const ConfigError& e) {
    throw ConfigError(origin + ": " + e.what());
  }
  return c;
}

}  // namespace

TrainConfig parse_config_text(const std::string& ini_text, const std::string& origin) {
  return parse_config(ini_text, origin, nullptr);
}

TrainConfig load_config_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw ConfigError("cannot read config file '" + path + "'");
  // a folder opens as an empty stream on Linux: it would run every default silently
  if (fs::is_directory(status)) throw ConfigError("config file '" + path + "' is a directory");
  if (!fs::is_regular_file(status))
    throw ConfigError("config file '" + path + "' is not a regular file");
  std::ifstream f(path);
  if (!f) throw ConfigError("cannot read config file '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw ConfigError("cannot read config file '" + path + "'");
  const std::string text = ss.str();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    throw ConfigError("config file '" + path + "' is empty");
  size_t keys = 0;
  TrainConfig c = parse_config(text, path, &keys);
  // comments and section headers only: as good as empty
  if (keys == 0) throw ConfigError("config file '" + path + "' is empty (it sets no keys)");
  return c;
}

void apply_overrides(TrainConfig& config, const std::vector<std::string>& args) {
  if (args.empty()) return;
  auto desc = describe(config);
  // shortcuts for the keys people change most; applied after notify so that the full keys'
  // defaults (their current values) cannot overwrite them
  int threads = 0;
  int64_t epochs = 0;
  std::string seed;
  desc.add_options()                           //
      ("threads", po::value<int>(&threads))    //
      ("epochs", po::value<int64_t>(&epochs))  //
      ("seed", po::value<std::string>(&seed));
  try {
    po::variables_map vm;
    po::store(
        po::command_line_parser(args)
            .options(desc)
            .style(po::command_line_style::unix_style ^ po::command_line_style::allow_guessing)
            .run(),
        vm);
    po::notify(vm);
    if (vm.count("threads")) config.train.threads = threads;
    if (vm.count("epochs")) config.train.epochs = epochs;
    if (vm.count("seed")) config.train.seed = parse_seed(seed, "seed");
  } catch (const po::error& e) {
    throw ConfigError(std::string("command line: ") + e.what());
  } catch (const ConfigError& e) {
    throw ConfigError(std::string("command line: ") + e.what());
  }
}

std::string TrainConfig::to_ini() const {
  std::ostringstream o;
  o.precision(17);
  o << "name = " << name << "\nout = " << out_dir << "\n";
  o << "\n[data]\nformat = " << data.format << "\nroot = " << data.root
    << "\nvalidation_fraction = " << data.validation_fraction
    << "\ncrop_padding = " << data.crop_padding
    << "\nhorizontal_flip = " << (data.horizontal_flip ? "true" : "false")
    << "\nworkers = " << data.workers << "\nlimit_train = " << data.limit_train
    << "\nlimit_test = " << data.limit_test << "\nimage_size = " << data.image_size
    << "\nchannels = " << data.channels << "\n";
  o << "\n[model]\narch = " << model.arch << "\nstem_width = " << model.stem_width
    << "\nwidths = " << join_int_list(model.widths) << "\ndepths = " << join_int_list(model.depths)
    << "\nexpansion = " << model.expansion << "\ninit = " << model.init << "\n";
  o << "\n[train]\nepochs = " << train.epochs << "\nbatch_size = " << train.batch_size
    << "\noptimizer = " << train.optimizer << "\nlr = " << train.lr
    << "\nmomentum = " << train.momentum << "\nnesterov = " << (train.nesterov ? "true" : "false")
    << "\nweight_decay = " << train.weight_decay << "\nschedule = " << train.schedule
    << "\nstep_size = " << train.step_size << "\ngamma = " << train.gamma
    << "\nwarmup_epochs = " << train.warmup_epochs
    << "\nschedule_epochs = " << train.schedule_epochs
    << "\nlabel_smoothing = " << train.label_smoothing << "\nseed = " << train.seed
    << "\nthreads = " << train.threads << "\ndevice = " << train.device
    << "\nbatchnorm = " << train.batchnorm << "\n";
  if (supernet.enabled())
    o << "\n[supernet]\nwidths = " << supernet.widths << "\nops = " << supernet.ops
      << "\nop_stages = " << supernet.op_stages << "\nexits = " << supernet.exits
      << "\ndepths = " << supernet.depths << "\nbackbone = " << supernet.backbone
      << "\njoint_epochs = " << supernet.joint_epochs << "\njoint_lr = " << supernet.joint_lr
      << "\njoint_schedule = " << supernet.joint_schedule
      << "\ndepth_order = " << supernet.depth_order << "\nsampled = " << supernet.sampled
      << "\nevery_step = " << supernet.every_step << "\nstudent_batch = " << supernet.student_batch
      << "\nstudent_threads = " << supernet.student_threads
      << "\ndistill_weight = " << supernet.distill_weight
      << "\nstudent_weight = " << supernet.student_weight
      << "\nexit_weight = " << supernet.exit_weight << "\nexit_head = " << supernet.exit_head
      << "\ncalibration_images = " << supernet.calibration_images
      << "\ndistill_steps = " << supernet.distill_steps << "\nprecisions = " << supernet.precisions
      << "\nint8_weights = " << supernet.int8_weights
      << "\nint8_shared_max_loss = " << supernet.int8_shared_max_loss
      << "\nqat_images = " << supernet.qat_images << "\nqat_steps = " << supernet.qat_steps
      << "\nqat_lr = " << supernet.qat_lr << "\nqat_percentile = " << supernet.qat_percentile
      << "\n";
  return o.str();
}

namespace {

std::string show(double v) {
  std::ostringstream o;
  o.precision(10);
  o << v;
  return o.str();
}

}  // namespace

// Every numeric key is range-checked here, supernet keys included whether or not a branch space
// is set; the bounds are generous but finite, so no product of them can overflow.
void TrainConfig::validate() const {
  auto fail = [&](const std::string& key, const std::string& why) {
    throw ConfigError(source + ": config key '" + key + "' " + why);
  };
  constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
  // lo <= v <= hi
  auto integer = [&](const std::string& key, int64_t v, int64_t lo, int64_t hi) {
    if (v >= lo && v <= hi) return;
    fail(key,
         (hi == kMaxInt ? "must be >= " + std::to_string(lo)
                        : "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]") +
             ", got " + std::to_string(v));
  };
  // finite, lo <(=) v <(=) hi; hi = infinity: no upper bound
  auto real = [&](const std::string& key, double v, double lo, bool lo_closed, double hi,
                  bool hi_closed) {
    const bool ok = std::isfinite(v) && (lo_closed ? v >= lo : v > lo) &&
                    (std::isinf(hi) || (hi_closed ? v <= hi : v < hi));
    if (ok) return;
    fail(key, "must be finite and " +
                  (std::isinf(hi) ? std::string(lo_closed ? ">= " : "> ") + show(lo)
                                  : std::string("in ") + (lo_closed ? "[" : "(") + show(lo) + ", " +
                                        show(hi) + (hi_closed ? "]" : ")")) +
                  ", got " + show(v));
  };
  constexpr double kInf = std::numeric_limits<double>::infinity();
  constexpr int64_t kMaxEpochs = 1000000;
  constexpr int64_t kMaxImages = int64_t{1} << 30;
  constexpr int64_t kMaxSteps = int64_t{1} << 30;

  // [data]
  if (data.format != "fashion-mnist" && data.format != "mnist" && data.format != "cifar10" &&
      data.format != "cifar100" && data.format != "folder" && data.format != "hdf5")
    fail("data.format",
         "must be one of fashion-mnist, mnist, cifar10, cifar100, folder, hdf5 (got '" +
             data.format + "')");
  real("data.validation_fraction", data.validation_fraction, 0.0, true, 1.0, false);
  integer("data.crop_padding", data.crop_padding, 0, 1024);
  integer("data.workers", data.workers, 0, 64);
  integer("data.limit_train", data.limit_train, 0, kMaxInt);
  integer("data.limit_test", data.limit_test, 0, kMaxInt);
  // image_size and channels shape the images of the folder format and nothing else; there they
  // must be given (no silent 32x32 RGB)
  if (data.format == "folder") {
    if (data.image_size < 1 || data.image_size > 4096)
      fail("data.image_size",
           "must be in [1, 4096] for data.format = folder, got " + std::to_string(data.image_size));
    if (data.channels != 1 && data.channels != 3)
      fail("data.channels",
           "must be 1 or 3 for data.format = folder, got " + std::to_string(data.channels));
  } else {
    integer("data.image_size", data.image_size, 0, 4096);
    if (data.channels != 0 && data.channels != 1 && data.channels != 3)
      fail("data.channels", "must be 0 (unused), 1 or 3, got " + std::to_string(data.channels));
  }

  // [model]
  if (model.arch != "resnet" && model.arch != "mobilenetv2")
    fail("model.arch", "must be resnet or mobilenetv2 (got '" + model.arch + "')");
  integer("model.stem_width", model.stem_width, 1, 65536);
  for (auto w : model.widths)
    if (w < 1 || w > 65536)
      fail("model.widths", "entries must be in [1, 65536], got " + std::to_string(w));
  for (auto d : model.depths)
    if (d < 1 || d > 1024)
      fail("model.depths", "entries must be in [1, 1024], got " + std::to_string(d));
  if (model.widths.size() > 64)
    fail("model.widths", "must list at most 64 stages, got " + std::to_string(model.widths.size()));
  if (model.widths.size() != model.depths.size())
    fail("model.depths", "must list one depth per stage of model.widths (" +
                             std::to_string(model.widths.size()) + " stages)");
  integer("model.expansion", model.expansion, 1, 1024);

  // [train]
  integer("train.epochs", train.epochs, 1, kMaxEpochs);
  integer("train.batch_size", train.batch_size, 1, int64_t{1} << 24);
  if (train.optimizer != "sgd" && train.optimizer != "adamw")
    fail("train.optimizer", "must be sgd or adamw (got '" + train.optimizer + "')");
  real("train.lr", train.lr, 0.0, false, kInf, false);
  real("train.momentum", train.momentum, 0.0, true, 1.0, false);
  real("train.weight_decay", train.weight_decay, 0.0, true, kInf, false);
  if (train.schedule != "cosine" && train.schedule != "step" && train.schedule != "constant")
    fail("train.schedule", "must be cosine, step or constant (got '" + train.schedule + "')");
  integer("train.step_size", train.step_size, 1, kMaxEpochs);
  real("train.gamma", train.gamma, 0.0, false, 1.0, true);
  if (train.schedule_epochs != 0 &&
      (train.schedule_epochs < train.epochs || train.schedule_epochs > kMaxEpochs))
    fail("train.schedule_epochs",
         "must be 0 (= train.epochs) or in [train.epochs = " + std::to_string(train.epochs) + ", " +
             std::to_string(kMaxEpochs) + "], got " + std::to_string(train.schedule_epochs));
  // a warm-up longer than the schedule would never reach train.lr
  const bool continued = supernet.enabled() && supernet.joint_schedule == "continue";
  const int64_t horizon = std::max(train.epochs, train.schedule_epochs) +
                          (continued ? std::max<int64_t>(0, supernet.joint_epochs) : 0);
  real("train.warmup_epochs", train.warmup_epochs, 0.0, true, static_cast<double>(horizon), true);
  real("train.label_smoothing", train.label_smoothing, 0.0, true, 1.0, false);
  integer("train.threads", train.threads, 1, 256);
  {
    const auto& d = train.device;
    const bool indexed = d.size() > 5 && d.rfind("cuda:", 0) == 0 &&
                         d.find_first_not_of("0123456789", 5) == std::string::npos && d.size() < 9;
    if (d != "cpu" && d != "cuda" && !indexed)
      fail("train.device", "must be cpu, cuda or cuda:N, got '" + d + "'");
  }
  if (train.batchnorm != "per-rank" && train.batchnorm != "synchronized")
    fail("train.batchnorm", "must be per-rank or synchronized, got '" + train.batchnorm + "'");
  if (out_dir.empty()) fail("out", "must not be empty");

  // [supernet]: numbers checked either way (int8 twins are also made of plain checkpoints at
  // export); the relations between keys only with a branch space
  if (supernet.int8_weights != "shared" && supernet.int8_weights != "finetuned")
    fail("supernet.int8_weights",
         "unknown value '" + supernet.int8_weights + "' (known: shared, finetuned)");
  real("supernet.int8_shared_max_loss", supernet.int8_shared_max_loss, 0.0, true, 100.0, true);
  integer("supernet.joint_epochs", supernet.joint_epochs, 1, kMaxEpochs);
  real("supernet.joint_lr", supernet.joint_lr, 0.0, false, kInf, false);
  integer("supernet.sampled", supernet.sampled, 0, 4096);
  real("supernet.student_batch", supernet.student_batch, 0.0, false, 1.0, true);
  integer("supernet.student_threads", supernet.student_threads, 0, 256);
  real("supernet.distill_weight", supernet.distill_weight, 0.0, true, 1.0, true);
  real("supernet.student_weight", supernet.student_weight, 0.0, false, 1.0, true);
  real("supernet.exit_weight", supernet.exit_weight, 0.0, true, 10.0, true);
  integer("supernet.calibration_images", supernet.calibration_images, 16, kMaxImages);
  integer("supernet.distill_steps", supernet.distill_steps, 0, kMaxSteps);
  integer("supernet.qat_images", supernet.qat_images, 1, kMaxImages);
  integer("supernet.qat_steps", supernet.qat_steps, 0, kMaxSteps);
  real("supernet.qat_lr", supernet.qat_lr, 0.0, false, kInf, false);
  real("supernet.qat_percentile", supernet.qat_percentile, 50.0, false, 100.0, true);
  if (supernet.enabled()) {
    if (model.arch != "resnet" && model.arch != "mobilenetv2")
      fail("model.arch", "must be resnet or mobilenetv2 for a multi-branch network");
    if (supernet.depth_order != "sandwich" && supernet.depth_order != "progressive")
      fail("supernet.depth_order",
           "must be sandwich or progressive, got '" + supernet.depth_order + "'");
    if (supernet.joint_schedule != "restart" && supernet.joint_schedule != "continue")
      fail("supernet.joint_schedule",
           "must be restart or continue, got '" + supernet.joint_schedule + "'");
    if (supernet.joint_schedule == "continue" && !supernet.backbone.empty())
      fail("supernet.joint_schedule",
           "continue goes on from the warm-up's schedule; with supernet.backbone use restart");
    if (supernet.joint_schedule == "continue" && train.schedule != "cosine")
      fail("supernet.joint_schedule", "continue needs train.schedule = cosine");
    if (supernet.exit_head != "linear" && supernet.exit_head != "block")
      fail("supernet.exit_head", "must be linear or block, got '" + supernet.exit_head + "'");
  }
}

}  // namespace adascale::trainer
