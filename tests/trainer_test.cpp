// trainer: config parsing and errors, models, schedules, checkpoints, resume, a real-data smoke run
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "datasets/dataset.h"
#include "fmnist_slice.h"
#include "trainer/checkpoint.h"
#include "trainer/config.h"
#include "trainer/models.h"
#include "trainer/training.h"

namespace fs = std::filesystem;
using namespace adascale;
using namespace adascale::trainer;

namespace {

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() /
             ("adascale_trainer_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// a tiny learnable dataset: class k has a bright square in quadrant k
void write_quadrant_set(const fs::path& path, int64_t n, uint64_t seed) {
  const int64_t h = 12, w = 12;
  std::vector<uint8_t> pixels(static_cast<size_t>(n * h * w));
  std::vector<int64_t> labels(static_cast<size_t>(n));
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = static_cast<int64_t>(rng() % 4);
    labels[i] = k;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const bool inside = (y / 6) * 2 + (x / 6) == k;
        pixels[i * h * w + y * w + x] = static_cast<uint8_t>((inside ? 160 : 20) + rng() % 60);
      }
  }
  data::InMemoryDataset set({1, h, w}, pixels, labels, {"tl", "tr", "bl", "br"}, "generated");
  data::write_hdf5(set, path.string());
}

TrainConfig tiny_config(const fs::path& data_root, const fs::path& out) {
  TrainConfig c;
  c.source = "test";
  c.data.format = "hdf5";
  c.data.root = data_root.string();
  c.data.validation_fraction = 0.2;
  c.data.crop_padding = 1;
  c.data.horizontal_flip = false;  // a flip swaps the left and right quadrant classes
  c.data.workers = 0;
  c.model.stem_width = 4;
  c.model.widths = {4, 8};
  c.model.depths = {1, 1};
  c.train.epochs = 2;
  c.train.batch_size = 16;
  c.train.lr = 0.05;
  c.train.threads = 1;
  c.out_dir = out.string();
  return c;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST(Config, ParsesSectionsAndLists) {
  auto c = parse_config_text(
      "name = x\nout = /tmp/x\n[model]\nwidths = 8, 16,32\ndepths = 1,2,3\n[train]\nepochs = 7\n"
      "nesterov = false\n",
      "inline.ini");
  EXPECT_EQ(c.name, "x");
  EXPECT_EQ(c.model.widths, (std::vector<int64_t>{8, 16, 32}));
  EXPECT_EQ(c.model.depths, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(c.train.epochs, 7);
  EXPECT_FALSE(c.train.nesterov);
  EXPECT_EQ(c.data.format, "fashion-mnist");  // untouched keys keep defaults
}

TEST(Config, UnknownKeyNamesKeyAndFile) {
  try {
    parse_config_text("[train]\nepoch = 3\n", "configs/bad.ini");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("configs/bad.ini"), std::string::npos) << what;
    EXPECT_NE(what.find("train.epoch"), std::string::npos) << what;
  }
}

TEST(Config, IllTypedValueNamesKey) {
  try {
    parse_config_text("[train]\nepochs = ten\n", "f.ini");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.epochs"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_config_text("[model]\nwidths = 8,x\n", "f.ini"), ConfigError);
}

TEST(Config, OverridesAndShortcuts) {
  auto c = parse_config_text("[train]\nepochs = 7\n", "f.ini");
  apply_overrides(c, {"--train.lr", "0.5", "--threads", "3", "--epochs", "2", "--out", "/tmp/o"});
  EXPECT_DOUBLE_EQ(c.train.lr, 0.5);
  EXPECT_EQ(c.train.threads, 3);
  EXPECT_EQ(c.train.epochs, 2);
  EXPECT_EQ(c.out_dir, "/tmp/o");
  EXPECT_THROW(apply_overrides(c, {"--train.bogus", "1"}), ConfigError);
}

TEST(Config, ValidateRejectsNonsense) {
  auto c = parse_config_text("[model]\nwidths = 8,16\ndepths = 1\n", "f.ini");
  try {
    c.validate();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.depths"), std::string::npos);
  }
  auto d = parse_config_text("[train]\nlr = -1\n", "f.ini");
  EXPECT_THROW(d.validate(), ConfigError);
  auto o = parse_config_text("[train]\noptimizer = lbfgs\n", "f.ini");
  EXPECT_THROW(o.validate(), ConfigError);
}

TEST(Config, IniRoundTrip) {
  auto c = parse_config_text("[train]\nlr = 0.123\nwarmup_epochs = 0.25\n[data]\nroot = /a b\n",
                             "f.ini");
  auto again = parse_config_text(c.to_ini(), "again");
  EXPECT_EQ(again.to_ini(), c.to_ini());
  EXPECT_DOUBLE_EQ(again.train.lr, 0.123);
  EXPECT_EQ(again.data.root, "/a b");
}

TEST(Config, ShippedConfigsParse) {
  for (const char* name : {"fmnist_resnet.ini", "fmnist_quick.ini"}) {
    auto c = load_config_file(std::string(ADASCALE_SOURCE_DIR) + "/configs/" + name);
    EXPECT_NO_THROW(c.validate()) << name;
  }
}

TEST(Models, ResNetShapesAndCost) {
  ModelConfig m;
  m.stem_width = 4;
  m.widths = {4, 8};
  m.depths = {1, 1};
  auto net = make_backbone(m, 1, 10);
  EXPECT_EQ(net->forward(torch::randn({2, 1, 28, 28})).sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_EQ(net->forward(torch::randn({3, 1, 32, 32})).sizes(), (std::vector<int64_t>{3, 10}));
  auto cost = measure_cost(*net, 1, 28, 28);
  // stem 1->4 3x3 @28x28; block1 two 4->4 3x3 @28; block2 4->8 3x3 s2 @14, 8->8 3x3 @14,
  // shortcut 4->8 1x1 @14; fc 8->10
  const int64_t expected = 28 * 28 * 4 * 9 + 2 * 28 * 28 * 4 * 4 * 9 + 14 * 14 * 8 * 4 * 9 +
                           14 * 14 * 8 * 8 * 9 + 14 * 14 * 8 * 4 + 8 * 10;
  EXPECT_EQ(cost.macs, expected);
  int64_t params = 0;
  for (auto& p : net->parameters()) params += p.numel();
  EXPECT_EQ(cost.params, params);
}

TEST(Models, MobileNetV2Shapes) {
  ModelConfig m;
  m.arch = "mobilenetv2";
  m.stem_width = 8;
  m.widths = {8, 16, 24};
  m.depths = {1, 2, 2};
  auto net = make_backbone(m, 3, 7);
  EXPECT_EQ(net->forward(torch::randn({2, 3, 32, 32})).sizes(), (std::vector<int64_t>{2, 7}));
  EXPECT_GT(measure_cost(*net, 3, 32, 32).macs, 0);
}

TEST(Schedule, WarmupCosineStep) {
  OptimConfig o;
  o.lr = 1.0;
  o.epochs = 10;
  o.warmup_epochs = 1;
  o.schedule = "cosine";
  EXPECT_NEAR(learning_rate(o, 0, 10), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(o, 9, 10), 1.0, 1e-12);
  EXPECT_NEAR(learning_rate(o, 10, 10), 1.0, 1e-12);
  EXPECT_NEAR(learning_rate(o, 55, 10), 0.5, 1e-12);
  EXPECT_LT(learning_rate(o, 99, 10), 0.01);
  o.schedule = "step";
  o.warmup_epochs = 0;
  o.step_size = 3;
  o.gamma = 0.5;
  EXPECT_NEAR(learning_rate(o, 29, 10), 1.0, 1e-12);
  EXPECT_NEAR(learning_rate(o, 30, 10), 0.5, 1e-12);
  EXPECT_NEAR(learning_rate(o, 65, 10), 0.25, 1e-12);
  // a longer cosine horizon than the epochs run: the schedule a later phase continues
  o.schedule = "cosine";
  o.epochs = 2;
  o.schedule_epochs = 6;
  EXPECT_NEAR(learning_rate(o, 30, 10), 0.5, 1e-12);  // halfway through 6 epochs
  EXPECT_GT(learning_rate(o, 19, 10), 0.7);           // the end of epoch 2 is far from 0
}

TEST(Config, JointScheduleRestartOrContinue) {
  const std::string space = "[supernet]\nwidths = 1.0,0.5\n";
  auto ok = parse_config_text(space + "joint_schedule = continue\n", "f.ini");
  EXPECT_NO_THROW(ok.validate());
  EXPECT_EQ(parse_config_text(ok.to_ini(), "again").supernet.joint_schedule, "continue");
  // the horizon a continued warm-up ran under is a key of its own, so its stored ini reproduces it
  auto warm = parse_config_text("[train]\nepochs = 2\nschedule_epochs = 6\n", "f.ini");
  EXPECT_NO_THROW(warm.validate());
  EXPECT_EQ(parse_config_text(warm.to_ini(), "again").train.schedule_epochs, 6);
  EXPECT_THROW(parse_config_text("[train]\nepochs = 3\nschedule_epochs = 2\n", "f.ini").validate(),
               ConfigError);
  auto expect_error = [](TrainConfig c, const std::string& words) {
    try {
      c.validate();
      FAIL() << words;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("supernet.joint_schedule"), std::string::npos);
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  expect_error(parse_config_text(space + "joint_schedule = sometimes\n", "f.ini"), "sometimes");
  expect_error(parse_config_text(space + "joint_schedule = continue\nbackbone = b.h5\n", "f.ini"),
               "use restart");
  expect_error(parse_config_text(
                   "[train]\nschedule = step\n" + space + "joint_schedule = continue\n", "f.ini"),
               "cosine");
}

TEST(Config, ExitWeightAndHeadRoundTripAndAreChecked) {
  const std::string space = "[supernet]\nwidths = 1.0,0.5\n";
  EXPECT_EQ(TrainConfig{}.supernet.exit_weight, 0.0);  // exits fitted after joint training
  EXPECT_EQ(TrainConfig{}.supernet.exit_head, "linear");
  auto ok = parse_config_text(space + "exit_weight = 0.3\nexit_head = block\n", "f.ini");
  EXPECT_NO_THROW(ok.validate());
  const auto again = parse_config_text(ok.to_ini(), "again");
  EXPECT_DOUBLE_EQ(again.supernet.exit_weight, 0.3);
  EXPECT_EQ(again.supernet.exit_head, "block");
  try {
    parse_config_text(space + "exit_head = mlp\n", "f.ini").validate();
    FAIL() << "exit_head = mlp was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("supernet.exit_head"), std::string::npos) << e.what();
  }
  for (const char* bad : {"-0.1", "nan", "11"}) {
    try {
      parse_config_text(space + "exit_weight = " + bad + "\n", "f.ini").validate();
      FAIL() << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("supernet.exit_weight"), std::string::npos) << e.what();
    }
  }
}

TEST(Config, StudentWeightRoundTripsAndIsChecked) {
  const std::string space = "[supernet]\nwidths = 1.0,0.5\n";
  EXPECT_EQ(TrainConfig{}.supernet.student_weight, 1.0);
  auto ok = parse_config_text(space + "student_weight = 0.5\n", "f.ini");
  EXPECT_NO_THROW(ok.validate());
  EXPECT_DOUBLE_EQ(parse_config_text(ok.to_ini(), "again").supernet.student_weight, 0.5);
  for (const char* bad : {"0", "-0.5", "1.5", "nan"}) {
    try {
      parse_config_text(space + "student_weight = " + bad + "\n", "f.ini").validate();
      FAIL() << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("supernet.student_weight"), std::string::npos)
          << e.what();
    }
  }
}

TEST(Config, Int8WeightsSharedOrFinetuned) {
  const std::string space = "[supernet]\nwidths = 1.0,0.5\n";
  auto ok =
      parse_config_text(space + "int8_weights = finetuned\nint8_shared_max_loss = 0.5\n", "f.ini");
  EXPECT_NO_THROW(ok.validate());
  const auto again = parse_config_text(ok.to_ini(), "again").supernet;
  EXPECT_EQ(again.int8_weights, "finetuned");
  EXPECT_DOUBLE_EQ(again.int8_shared_max_loss, 0.5);
  EXPECT_EQ(TrainConfig{}.supernet.int8_weights, "shared");
  auto error = [](const std::string& text) {
    try {
      parse_config_text(text, "f.ini").validate();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  // checked without a branch space too: plain checkpoints get int8 twins at export
  EXPECT_NE(error("[supernet]\nint8_weights = Shared\n").find("supernet.int8_weights"),
            std::string::npos);
  EXPECT_NE(error(space + "int8_shared_max_loss = -1\n").find("supernet.int8_shared_max_loss"),
            std::string::npos);
}

TEST(Checkpoint, RoundTrip) {
  auto dir = temp_dir("ckpt");
  ModelConfig m;
  m.stem_width = 4;
  m.widths = {4};
  m.depths = {1};
  auto net = make_backbone(m, 1, 3);
  auto opt = make_optimizer(OptimConfig{}, net->parameters());
  net->forward(torch::randn({4, 1, 8, 8})).sum().backward();
  opt->step();
  Checkpoint ck;
  ck.epoch = 3;
  ck.config_ini = "[train]\nepochs = 3\n";
  ck.architecture = net->describe();
  ck.input_shape = {1, 8, 8};
  ck.class_names = {"a", "b c", "d"};
  ck.normalize_mean = {0.25f};
  ck.normalize_std = {0.5f};
  ck.tensors = module_state(*net);
  ck.optimizer_archive = serialize_optimizer(*opt);
  ck.metric_columns = {"epoch", "loss"};
  ck.metrics = {{1, 0.5}, {2, 0.25}};
  const auto path = (dir / "c.h5").string();
  write_checkpoint(ck, path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto back = read_checkpoint(path);
  EXPECT_EQ(back.epoch, 3);
  EXPECT_EQ(back.config_ini, ck.config_ini);
  EXPECT_EQ(back.class_names, ck.class_names);
  EXPECT_EQ(back.metrics, ck.metrics);
  EXPECT_EQ(back.normalize_mean, ck.normalize_mean);
  EXPECT_EQ(back.optimizer_archive, ck.optimizer_archive);
  ASSERT_EQ(back.tensors.size(), ck.tensors.size());
  for (auto& [name, t] : ck.tensors) EXPECT_TRUE(torch::equal(t, back.tensors.at(name))) << name;
  // the loaded state reproduces the outputs, and the optimizer state loads
  auto twin = make_backbone(m, 1, 3);
  load_module_state(*twin, back.tensors, path);
  net->eval();
  twin->eval();
  auto x = torch::randn({2, 1, 8, 8});
  EXPECT_TRUE(torch::allclose(net->forward(x), twin->forward(x)));
  auto opt2 = make_optimizer(OptimConfig{}, twin->parameters());
  EXPECT_NO_THROW(deserialize_optimizer(*opt2, back.optimizer_archive));
  fs::remove_all(dir);
}

TEST(Checkpoint, CorruptTruncatedAndForeignFilesAreRejected) {
  auto dir = temp_dir("corrupt");
  const auto garbage = (dir / "garbage.h5").string();
  std::ofstream(garbage) << "this is not hdf5";
  EXPECT_THROW(read_checkpoint(garbage), CheckpointError);
  EXPECT_THROW(read_checkpoint((dir / "missing.h5").string()), CheckpointError);

  ModelConfig m;
  m.stem_width = 4;
  m.widths = {4};
  m.depths = {1};
  auto net = make_backbone(m, 1, 3);
  Checkpoint ck;
  ck.input_shape = {1, 8, 8};
  ck.normalize_mean = {0.f};
  ck.normalize_std = {1.f};
  ck.tensors = module_state(*net);
  const auto path = (dir / "c.h5").string();
  write_checkpoint(ck, path);
  const auto size = fs::file_size(path);
  fs::copy_file(path, dir / "trunc.h5");
  fs::resize_file(dir / "trunc.h5", size / 2);
  EXPECT_THROW(read_checkpoint((dir / "trunc.h5").string()), CheckpointError);

  // another architecture: names or shapes disagree
  ModelConfig wider = m;
  wider.widths = {8};
  auto other = make_backbone(wider, 1, 3);
  try {
    load_module_state(*other, read_checkpoint(path).tensors, path);
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Checkpoint, UnwritableFolderLeavesNothingBehind) {
  Checkpoint ck;
  ck.input_shape = {1, 1, 1};
  EXPECT_THROW(write_checkpoint(ck, "/proc/adascale-no/c.h5"), CheckpointError);
  EXPECT_THROW(ensure_writable_dir("/proc/adascale-no"), ConfigError);
}

// an interrupted run, resumed, reaches bit-identical weights
TEST(Training, ResumeMatchesUninterruptedRun) {
  auto dir = temp_dir("resume");
  write_quadrant_set(dir / "train.h5", 256, 1);
  write_quadrant_set(dir / "test.h5", 64, 2);
  std::ostringstream log;

  auto full = tiny_config(dir, dir / "full");
  train(full, false, log);
  auto split = tiny_config(dir, dir / "split");
  train(split, false, log, /*stop_after=*/1);
  EXPECT_EQ(read_checkpoint((dir / "split" / "checkpoint.h5").string()).epoch, 1);
  auto outcome = train(split, true, log);
  EXPECT_EQ(outcome.epochs_run, 1);

  auto a = read_checkpoint((dir / "full" / "checkpoint.h5").string());
  auto b = read_checkpoint((dir / "split" / "checkpoint.h5").string());
  EXPECT_EQ(a.epoch, 2);
  EXPECT_EQ(b.epoch, 2);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (auto& [name, t] : a.tensors) EXPECT_TRUE(torch::equal(t, b.tensors.at(name))) << name;
  EXPECT_EQ(a.metrics.size(), 2u);
  EXPECT_EQ(b.metrics.size(), 2u);
  EXPECT_DOUBLE_EQ(a.test_accuracy, b.test_accuracy);

  // a changed config is refused on resume
  auto changed = tiny_config(dir, dir / "split");
  changed.train.lr = 0.01;
  EXPECT_THROW(train(changed, true, log), ConfigError);
  fs::remove_all(dir);
}

TEST(Training, LearnsTheQuadrantTask) {
  auto dir = temp_dir("learn");
  write_quadrant_set(dir / "train.h5", 512, 3);
  write_quadrant_set(dir / "test.h5", 128, 4);
  std::ostringstream log;
  auto c = tiny_config(dir, dir / "out");
  c.train.epochs = 4;
  auto outcome = train(c, false, log);
  EXPECT_GT(outcome.test.accuracy, 0.8) << log.str();  // chance is 0.25
  EXPECT_EQ(outcome.test.confusion.sum().item<int64_t>(), 128);
  fs::remove_all(dir);
}

// one epoch on a 2,000-image slice of the real Fashion-MNIST
TEST(Training, FashionMnistSmoke) {
  if (!adascale::testing::has_fashion_mnist()) GTEST_SKIP() << "no Fashion-MNIST";
  auto dir = temp_dir("fmnist");
  TrainConfig c = adascale::testing::fashion_mnist_slice(2000, 1000, dir / "out");
  c.model.widths = {16, 32};
  c.train.batch_size = 16;
  std::ostringstream log;
  auto outcome = train(c, false, log);
  EXPECT_EQ(outcome.test.examples, 1000);
  EXPECT_GT(outcome.test.accuracy, 0.3) << log.str();  // chance is 0.1
  auto ck = read_checkpoint(outcome.checkpoint_path);
  EXPECT_EQ(ck.class_names.size(), 10u);
  EXPECT_EQ(ck.class_names[9], "Ankle boot");
  fs::remove_all(dir);
}

// the command line: bad input gives one line naming the culprit and a non-zero exit
namespace {
struct CliResult {
  int code;
  std::string err;
};
CliResult run_cli(const std::string& args) {
  auto dir = fs::temp_directory_path();
  const auto err = dir / ("adascale_cli_err_" + std::to_string(::getpid()));
  const std::string cmd = std::string(ADASCALE_CLI) + " " + args + " >/dev/null 2>" + err.string();
  const int status = std::system(cmd.c_str());
  CliResult r{WEXITSTATUS(status), slurp(err)};
  fs::remove(err);
  return r;
}
}  // namespace

TEST(Cli, BadInputIsOneLineAndNonZero) {
  auto dir = temp_dir("cli");
  std::ofstream(dir / "bad.ini") << "[train]\nepoch = 3\n";
  auto r = run_cli("train --config " + (dir / "bad.ini").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("train.epoch"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  std::ofstream(dir / "ok.ini") << "[data]\nroot = " << (dir / "nowhere").string() << "\n";
  r = run_cli("train --config " + (dir / "ok.ini").string() + " --out " + (dir / "o").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("nowhere"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  r = run_cli("train --config " + (dir / "ok.ini").string() + " --out /proc/adascale-x");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("/proc/adascale-x"), std::string::npos) << r.err;

  std::ofstream(dir / "c.h5") << "garbage";
  r = run_cli("eval --checkpoint " + (dir / "c.h5").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("c.h5"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  // a flag out of range is named on the first line (the usage follows) before any checkpoint
  // is read
  r = run_cli("export --checkpoint " + (dir / "c.h5").string() + " --out " +
              (dir / "m.bundle").string() + " --int8-max-loss -2");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.substr(0, r.err.find('\n')).find("--int8-max-loss"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "m.bundle"));
  fs::remove_all(dir);
}
