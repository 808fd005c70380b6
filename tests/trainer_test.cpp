// trainer: config parsing and errors, models, schedules, checkpoints, resume, a real-data smoke run
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

// the HDF5 C API edits written checkpoints (forged headers, older formats)
#include <hdf5.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>

#include "datasets/dataset.h"
#include "fmnist_slice.h"
#include "models/backbone.h"
#include "supernet/branch_space.h"
#include "trainer/checkpoint.h"
#include "trainer/config.h"
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

// every training config shipped parses, validates, and a branch space fits its model
TEST(Config, ShippedConfigsParse) {
  int checked = 0;
  for (const auto& e : fs::directory_iterator(std::string(ADASCALE_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".ini") continue;
    const std::string name = e.path().filename().string();
    auto c = load_config_file(e.path().string());
    EXPECT_NO_THROW(c.validate()) << name;
    if (c.supernet.enabled()) {
      const int64_t channels = c.data.format == "cifar10" ? 3 : 1;
      EXPECT_NO_THROW(
          BranchSpace::from_config(c.supernet, ResNetSpec::from_config(c.model, channels, 10)))
          << name;
    }
    ++checked;
  }
  EXPECT_GE(checked, 6);
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

// both families name their stages, blocks and convolution slots, and every name is a module
TEST(Models, BackbonesNameTheirBlocksAndSlots) {
  ModelConfig m;
  m.stem_width = 8;
  m.widths = {8, 16};
  m.depths = {1, 2};
  const auto resnet = make_backbone(m, 1, 10);
  m.arch = "mobilenetv2";
  const auto mobilenet = make_backbone(m, 1, 10);
  for (const auto& net : {resnet, mobilenet}) {
    const auto stages = net->stages();
    ASSERT_EQ(stages.size(), 2u);
    EXPECT_EQ(stages[0].size(), 1u);
    ASSERT_EQ(stages[1].size(), 2u);
    EXPECT_EQ(stages[1][1].name, "stages.1.1");
    for (const auto& stage : stages)
      for (const auto& block : stage) {
        EXPECT_NO_THROW(net->module_named(block.name));
        for (const auto& slot : block.conv_slots) {
          EXPECT_EQ(slot.rfind(block.name + ".", 0), 0u) << slot;
          EXPECT_NO_THROW(net->module_named(slot)) << slot;
        }
      }
    EXPECT_THROW(net->module_named("stages.9.0"), ConfigError);
  }
  EXPECT_EQ(resnet->stages()[1][0].conv_slots,
            (std::vector<std::string>{"stages.1.0.conv1", "stages.1.0.conv2"}));
  // the first MobileNetV2 stage has no expansion, later ones expand, filter depthwise and project
  EXPECT_EQ(mobilenet->stages()[0][0].conv_slots,
            (std::vector<std::string>{"stages.0.0.depthwise", "stages.0.0.project"}));
  EXPECT_EQ(mobilenet->stages()[1][0].conv_slots,
            (std::vector<std::string>{"stages.1.0.expand", "stages.1.0.depthwise",
                                      "stages.1.0.project"}));
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

TEST(Config, DepthsAndDepthOrderRoundTripAndAreChecked) {
  const std::string space = "[supernet]\nwidths = 1.0,0.5\n";
  EXPECT_EQ(TrainConfig{}.supernet.depth_order, "sandwich");
  auto ok = parse_config_text(space + "depths = d1/2@3\ndepth_order = progressive\n", "f.ini");
  EXPECT_NO_THROW(ok.validate());
  const auto again = parse_config_text(ok.to_ini(), "again");
  EXPECT_EQ(again.supernet.depths, "d1/2@3");
  EXPECT_EQ(again.supernet.depth_order, "progressive");
  try {
    parse_config_text(space + "depth_order = shuffled\n", "f.ini").validate();
    FAIL() << "depth_order = shuffled was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("supernet.depth_order"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shuffled"), std::string::npos) << e.what();
  }
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

std::string config_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DirectoryOrEmptyConfigFileIsNamed) {
  auto dir = temp_dir("config_files");
  const auto folder = (dir / "configs.ini").string();
  fs::create_directories(folder);
  EXPECT_EQ(config_error([&] { load_config_file(folder); }),
            "config file '" + folder + "' is a directory");
  const auto empty = (dir / "empty.ini").string();
  std::ofstream(empty).close();
  EXPECT_EQ(config_error([&] { load_config_file(empty); }), "config file '" + empty + "' is empty");
  const auto blank = (dir / "blank.ini").string();
  std::ofstream(blank) << "  \n\t\n";
  EXPECT_EQ(config_error([&] { load_config_file(blank); }), "config file '" + blank + "' is empty");
  // comments and a section header set nothing either
  const auto comments = (dir / "comments.ini").string();
  std::ofstream(comments) << "# a run\n[train]\n# nothing here\n";
  EXPECT_NE(config_error([&] { load_config_file(comments); }).find("'" + comments + "' is empty"),
            std::string::npos);
  const auto ok = (dir / "ok.ini").string();
  std::ofstream(ok) << "[train]\nepochs = 3\n";
  EXPECT_EQ(load_config_file(ok).train.epochs, 3);
  fs::remove_all(dir);
}

// every numeric key of the config, with values that must be refused; the test below checks that
// the list covers every numeric key to_ini writes
const std::map<std::string, std::vector<std::string>>& bad_numeric_values() {
  static const std::map<std::string, std::vector<std::string>> table = {
      {"data.validation_fraction", {"nan", "inf", "-inf", "-0.1", "1"}},
      {"data.crop_padding", {"-1", "1025"}},
      {"data.workers", {"-1", "65"}},
      {"data.limit_train", {"-1"}},
      {"data.limit_test", {"-1"}},
      {"data.image_size", {"-1", "4097"}},
      {"data.channels", {"-1", "2", "4"}},
      {"model.stem_width", {"0", "-3", "65537"}},
      {"model.widths", {"0", "4,-1", "70000"}},
      {"model.depths", {"0", "1025"}},
      {"model.expansion", {"0", "1025"}},
      {"train.epochs", {"0", "-1", "1000001", "nan"}},
      {"train.batch_size", {"0", "-16", "16777217"}},
      {"train.lr", {"0", "-0.1", "nan", "inf"}},
      {"train.momentum", {"-0.1", "1", "nan", "inf"}},
      {"train.weight_decay", {"-1e-4", "nan", "inf"}},
      {"train.step_size", {"0", "1000001"}},
      {"train.gamma", {"0", "1.5", "nan", "inf"}},
      {"train.warmup_epochs", {"-1", "nan", "inf", "11"}},
      {"train.schedule_epochs", {"-1", "5", "1000001"}},
      {"train.label_smoothing", {"-0.1", "1", "nan", "inf"}},
      {"train.seed", {"-1", "1.5", "18446744073709551616", "x"}},
      {"train.threads", {"0", "257"}},
      {"supernet.joint_epochs", {"0", "1000001"}},
      {"supernet.joint_lr", {"0", "nan", "inf"}},
      {"supernet.sampled", {"-1", "4097"}},
      {"supernet.student_batch", {"0", "1.01", "nan", "inf"}},
      {"supernet.student_threads", {"-1", "257"}},
      {"supernet.distill_weight", {"-0.1", "1.1", "nan", "inf"}},
      {"supernet.student_weight", {"0", "1.1", "nan", "inf"}},
      {"supernet.exit_weight", {"-1", "11", "nan", "inf"}},
      {"supernet.calibration_images", {"15", "-1"}},
      {"supernet.distill_steps", {"-1"}},
      {"supernet.int8_shared_max_loss", {"-1", "101", "nan", "inf"}},
      {"supernet.qat_images", {"0", "-1"}},
      {"supernet.qat_steps", {"-1"}},
      {"supernet.qat_lr", {"0", "nan", "inf"}},
      {"supernet.qat_percentile", {"50", "100.5", "nan", "inf"}},
  };
  return table;
}

TEST(Config, EveryNumericKeyRejectsNonFiniteAndOutOfRangeValues) {
  // train.epochs = 10 (the default) bounds the warm-up; a branch space makes every key count
  const std::string base = "[supernet]\nwidths = 1.0,0.5\n";
  for (const auto& [key, values] : bad_numeric_values())
    for (const auto& value : values) {
      const auto dot = key.find('.');
      const std::string text =
          "[" + key.substr(0, dot) + "]\n" + key.substr(dot + 1) + " = " + value + "\n";
      // the supernet section may appear once; other sections come before it
      const std::string ini = key.rfind("supernet.", 0) == 0
                                  ? base + key.substr(dot + 1) + " = " + value + "\n"
                                  : text + base;
      const std::string what = config_error([&] { parse_config_text(ini, "f.ini").validate(); });
      EXPECT_NE(what.find("'" + key + "'"), std::string::npos)
          << key << " = " << value << " was accepted or not named: " << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  // the exact wording, for a value boost parses and the config used to take
  EXPECT_EQ(
      config_error([] { parse_config_text("[train]\nweight_decay = inf\n", "f.ini").validate(); }),
      "f.ini: config key 'train.weight_decay' must be finite and >= 0, got inf");
  EXPECT_EQ(
      config_error([] { parse_config_text("[train]\nwarmup_epochs = inf\n", "f.ini").validate(); }),
      "f.ini: config key 'train.warmup_epochs' must be finite and in [0, 10], got inf");
  EXPECT_EQ(config_error([] { parse_config_text("[train]\nseed = -1\n", "f.ini"); }),
            "f.ini: config key 'train.seed' must be an integer in [0, 18446744073709551615], got "
            "'-1'");
  // the shortcut too
  TrainConfig c;
  EXPECT_NE(config_error([&] {
              apply_overrides(c, {"--seed", "-1"});
            }).find("seed"),
            std::string::npos);
  apply_overrides(c, {"--seed", "18446744073709551615"});
  EXPECT_EQ(c.train.seed, 18446744073709551615ull);
  EXPECT_EQ(parse_config_text(c.to_ini(), "again").train.seed, 18446744073709551615ull);

  // the table covers every numeric key the config has
  TrainConfig all;
  all.supernet.widths = "1.0,0.5";
  std::istringstream ini(all.to_ini());
  std::string line, section;
  while (std::getline(ini, line)) {
    if (!line.empty() && line[0] == '[') section = line.substr(1, line.size() - 2) + ".";
    const auto eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    const std::string key = section + line.substr(0, eq), value = line.substr(eq + 3);
    if (value.empty() || value.find_first_not_of("0123456789.,-e") != std::string::npos) continue;
    // lists of the branch space, checked against the model by BranchSpace::from_config
    if (key == "supernet.widths" || key == "supernet.exits" || key == "supernet.op_stages")
      continue;
    EXPECT_TRUE(bad_numeric_values().count(key)) << "numeric key " << key << " is not tested";
  }
  EXPECT_NO_THROW(all.validate());
}

TEST(Config, FolderImagesNeedAnExplicitShape) {
  const std::string folder = "[data]\nformat = folder\nroot = /x\n";
  auto error = [&](const std::string& extra) {
    return config_error([&] { parse_config_text(folder + extra, "f.ini").validate(); });
  };
  EXPECT_NE(error("channels = 3\n").find("'data.image_size' must be in [1, 4096]"),
            std::string::npos);
  EXPECT_NE(error("image_size = -5\nchannels = 3\n").find("data.image_size"), std::string::npos);
  EXPECT_NE(error("image_size = 0\nchannels = 3\n").find("data.image_size"), std::string::npos);
  EXPECT_NE(error("image_size = 32\nchannels = 0\n").find("'data.channels' must be 1 or 3"),
            std::string::npos);
  EXPECT_NE(error("image_size = 32\n").find("data.channels"), std::string::npos);
  EXPECT_EQ(error("image_size = 32\nchannels = 1\n"), "");
  // other formats take their shape from the files: 0 (unset) is fine there
  EXPECT_NO_THROW(parse_config_text("[data]\nformat = hdf5\n", "f.ini").validate());
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
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}), 1);
  auto back = read_checkpoint(path);
  EXPECT_EQ(back.format_version, 2);
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

namespace {

std::string slurp_binary(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void spit_binary(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// a small checkpoint with every part filled: tensors of both dtypes, optimizer state, metrics
Checkpoint small_checkpoint() {
  torch::manual_seed(7);
  ModelConfig m;
  m.stem_width = 4;
  m.widths = {4};
  m.depths = {1};
  auto net = make_backbone(m, 1, 3);
  auto opt = make_optimizer(OptimConfig{}, net->parameters());
  net->forward(torch::randn({4, 1, 8, 8})).sum().backward();
  opt->step();
  Checkpoint ck;
  ck.epoch = 2;
  ck.config_ini = "[train]\nepochs = 2\n";
  ck.architecture = net->describe();
  ck.spec = net->spec_json();
  ck.lineage = "prune0.50";
  ck.input_shape = {1, 8, 8};
  ck.class_names = {"alpha", "beta", "gamma"};
  ck.normalize_mean = {0.25f};
  ck.normalize_std = {0.5f};
  ck.test_accuracy = 0.75;
  ck.test_loss = 0.5;
  ck.tensors = module_state(*net);
  ck.optimizer_archive = serialize_optimizer(*opt);
  ck.metric_columns = {"epoch",    "lr",           "train_loss",   "train_accuracy",
                       "val_loss", "val_accuracy", "images_per_s", "epoch_seconds"};
  ck.metrics = {{1, 0.1, 1.5, 0.4, 1.4, 0.45, 1000, 2}, {2, 0.05, 1.1, 0.6, 1.2, 0.55, 1100, 2}};
  return ck;
}

// "" when a loaded checkpoint holds exactly what was written, else what differs
std::string checkpoint_difference(const Checkpoint& a, const Checkpoint& b) {
  if (a.epoch != b.epoch) return "epoch";
  if (a.config_ini != b.config_ini) return "config";
  if (a.architecture != b.architecture) return "architecture";
  if (a.spec != b.spec) return "spec";
  if (a.lineage != b.lineage) return "lineage";
  if (a.input_shape != b.input_shape) return "input_shape";
  if (a.class_names != b.class_names) return "class_names";
  if (a.normalize_mean != b.normalize_mean || a.normalize_std != b.normalize_std)
    return "normalization";
  if (a.test_accuracy != b.test_accuracy || a.test_loss != b.test_loss) return "test metrics";
  if (a.optimizer_archive != b.optimizer_archive) return "optimizer archive";
  if (a.metric_columns != b.metric_columns || a.metrics != b.metrics) return "metrics";
  if (a.tensors.size() != b.tensors.size()) return "tensor count";
  for (const auto& [name, t] : a.tensors) {
    auto it = b.tensors.find(name);
    if (it == b.tensors.end()) return "tensor " + name + " missing";
    if (t.scalar_type() != it->second.scalar_type() || !torch::equal(t, it->second))
      return "tensor " + name;
  }
  return "";
}

std::string checkpoint_error(const std::string& path) {
  try {
    read_checkpoint(path);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

// HDF5 edits of a written checkpoint
struct H5Edit {
  hid_t file;
  explicit H5Edit(const std::string& path)
      : file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)) {
    EXPECT_GE(file, 0) << path;
  }
  ~H5Edit() { H5Fclose(file); }
  // replaces a dataset with a chunked one that claims `dims` values (no chunk is stored), with
  // a crc32 attribute as a format 2 dataset has
  void forge(const std::string& name, hid_t type, const std::vector<hsize_t>& dims) {
    ASSERT_GE(H5Ldelete(file, name.c_str(), H5P_DEFAULT), 0) << name;
    std::vector<hsize_t> max(dims.size(), H5S_UNLIMITED), chunk(dims.size(), 1);
    chunk.back() = std::max<hsize_t>(dims.back(), 1);  // a chunk extent cannot be 0
    hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), max.data());
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
    hid_t ds = H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ASSERT_GE(ds, 0) << name;
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(ds, "crc32", H5T_STD_U32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    const uint32_t crc = 0;
    H5Awrite(attr, H5T_NATIVE_UINT32, &crc);
    H5Aclose(attr);
    H5Sclose(scalar);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
  }
  void set_format_version(int64_t v) {
    hid_t attr = H5Aopen(file, "format_version", H5P_DEFAULT);
    H5Awrite(attr, H5T_NATIVE_INT64, &v);
    H5Aclose(attr);
  }
  void drop_attribute(const std::string& object, const std::string& attr) {
    EXPECT_GE(H5Adelete_by_name(file, object.c_str(), attr.c_str(), H5P_DEFAULT), 0)
        << object << " " << attr;
  }
  // replaces a text attribute (fixed-length, as the writer stores text)
  void set_text(const std::string& object, const std::string& attr, const std::string& value) {
    drop_attribute(object, attr);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, std::max<size_t>(value.size(), 1));
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(file, object.c_str(), attr.c_str(), type, scalar, H5P_DEFAULT,
                                H5P_DEFAULT, H5P_DEFAULT);
    const std::string padded = value.empty() ? std::string(1, '\0') : value;
    EXPECT_GE(H5Awrite(a, type, padded.data()), 0) << object << " " << attr;
    H5Aclose(a);
    H5Sclose(scalar);
    H5Tclose(type);
  }
  haddr_t data_offset(const std::string& name) {
    hid_t ds = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
    const haddr_t offset = H5Dget_offset(ds);
    H5Dclose(ds);
    return offset;
  }
};

}  // namespace

// a forged header must not size an allocation: the claimed extent is checked against the bytes
// the file stores first
TEST(Checkpoint, ForgedDimensionsAreRefusedBeforeAllocating) {
  auto dir = temp_dir("forged");
  const auto ck = small_checkpoint();
  const auto path = (dir / "c.h5").string();
  write_checkpoint(ck, path);
  fs::copy_file(path, dir / "model.h5");
  {
    H5Edit edit(path);
    edit.forge("metrics/history", H5T_NATIVE_DOUBLE, {hsize_t{1} << 61, 8});
  }
  std::string what = checkpoint_error(path);
  EXPECT_NE(what.find("checkpoint '" + path + "'"), std::string::npos) << what;
  EXPECT_NE(what.find("dataset 'metrics/history' claims [2305843009213693952, 8] values"),
            std::string::npos)
      << what;
  EXPECT_EQ(what.find('\n'), std::string::npos) << what;

  const auto model = (dir / "model.h5").string();
  {
    H5Edit edit(model);
    edit.forge("model/fc.weight", H5T_NATIVE_FLOAT, {hsize_t{1} << 20, hsize_t{1} << 20});
  }
  what = checkpoint_error(model);
  EXPECT_NE(what.find("dataset 'model/fc.weight' claims [1048576, 1048576] values"),
            std::string::npos)
      << what;
  fs::remove_all(dir);
}

// Found by fuzz/data_fuzz. Rows of no columns store no bytes, so no file size bounded their
// number (2^61 of them ran the reader out of memory). Names are stored one per line: an empty
// one (or one with a line break or NUL) read back as another list, so the writer refuses such
// names and the reader the empty lines only a damaged file holds.
TEST(Checkpoint, InputShapeAndNormalizationOutOfRangeAreRefused) {
  auto dir = temp_dir("shape");
  const auto path = (dir / "c.h5").string();
  const std::vector<std::pair<std::function<void(Checkpoint&)>, std::string>> cases = {
      {[](Checkpoint& c) {
         c.input_shape = {0, 8, 8};
       },
       "attribute input_shape must be"},
      {[](Checkpoint& c) {
         c.input_shape = {1, 8, 1 << 20};
       },
       "attribute input_shape must be"},
      {[](Checkpoint& c) { c.normalize_std = {0.f}; }, "attribute normalize_std holds 0"},
      {[](Checkpoint& c) { c.normalize_std = {-1.f}; }, "attribute normalize_std holds -1"},
      {[](Checkpoint& c) { c.normalize_mean = {3e38f}; }, "attribute normalize_mean holds"},
  };
  for (const auto& [edit, needle] : cases) {
    auto ck = small_checkpoint();
    edit(ck);
    write_checkpoint(ck, path);
    EXPECT_NE(checkpoint_error(path).find(needle), std::string::npos) << checkpoint_error(path);
  }
  fs::remove_all(dir);
}

TEST(Checkpoint, RowsWithoutColumnsAndUnstorableNamesAreRefused) {
  auto dir = temp_dir("names");
  auto ck = small_checkpoint();
  const auto path = (dir / "c.h5").string();
  write_checkpoint(ck, path);
  const auto rows = (dir / "rows.h5").string(), names = (dir / "names.h5").string();
  fs::copy_file(path, rows);
  fs::copy_file(path, names);
  {
    H5Edit edit(rows);
    // any count is refused; a small one keeps a regression from exhausting memory
    edit.forge("metrics/history", H5T_NATIVE_DOUBLE, {1000, 0});
    edit.set_text("metrics", "columns", "");
  }
  EXPECT_EQ(checkpoint_error(rows),
            "checkpoint '" + rows + "': dataset 'metrics/history' has 1000 rows but no columns");
  {
    H5Edit edit(names);
    edit.set_text(".", "class_names", "alpha\n\ngamma");
  }
  EXPECT_EQ(checkpoint_error(names),
            "checkpoint '" + names + "': class name 1 is empty or holds a line break or NUL");

  const auto write_error = [&](const Checkpoint& c) {
    try {
      write_checkpoint(c, (dir / "w.h5").string());
    } catch (const CheckpointError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::vector<std::vector<std::string>> unstorable = {
      {"a", ""}, {"a\nb"}, {std::string("a\0b", 3)}};
  for (const auto& bad : unstorable) {
    auto c = ck;
    c.class_names = bad;
    EXPECT_NE(write_error(c).find("class name"), std::string::npos);
  }
  auto c = ck;
  c.metric_columns.clear();
  c.metrics = {{}, {}};
  EXPECT_NE(write_error(c).find("metrics rows without metric columns"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "w.h5"));
  fs::remove_all(dir);
}

// Single-bit flips all over a checkpoint: each flipped file is refused with an error or (a bit
// in unused space) loads exactly what was written, never different data.
TEST(Checkpoint, SingleBitFlipsNeverLoadDifferentData) {
  auto dir = temp_dir("bitflip");
  const auto ck = small_checkpoint();
  const auto path = (dir / "c.h5").string();
  write_checkpoint(ck, path);
  ASSERT_EQ(checkpoint_difference(read_checkpoint(path), ck), "");
  const std::string original = slurp_binary(path);
  const auto flipped = (dir / "flipped.h5").string();
  int rejected = 0, identical = 0;
  for (size_t i = 0, n = 0; i < original.size(); i += 97, ++n) {
    std::string bytes = original;
    bytes[i] = static_cast<char>(bytes[i] ^ (1 << (n % 8)));
    spit_binary(flipped, bytes);
    try {
      const auto back = read_checkpoint(flipped);
      EXPECT_EQ(checkpoint_difference(back, ck), "")
          << "bit " << n % 8 << " of byte " << i << " loads different data";
      ++identical;
    } catch (const CheckpointError& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "bit " << n % 8 << " of byte " << i
                    << ": not a CheckpointError: " << e.what();
    }
  }
  RecordProperty("rejected", rejected);
  RecordProperty("identical", identical);
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(rejected + identical, static_cast<int>((original.size() + 96) / 97));
  fs::remove_all(dir);
}

TEST(Checkpoint, CorruptTensorOrAttributeIsNamed) {
  auto dir = temp_dir("crc");
  const auto ck = small_checkpoint();
  const auto path = (dir / "c.h5").string();
  write_checkpoint(ck, path);
  const std::string original = slurp_binary(path);
  const std::string tensor = "stages.0.0.conv1.weight";
  ASSERT_TRUE(ck.tensors.count(tensor));
  haddr_t offset = 0;
  {
    H5Edit edit(path);
    offset = edit.data_offset("model/" + tensor);
  }
  ASSERT_LT(offset + 8, original.size());
  std::string bytes = original;
  bytes[offset + 5] = static_cast<char>(bytes[offset + 5] ^ 0x01);  // a low mantissa bit
  const auto bad = (dir / "bad.h5").string();
  spit_binary(bad, bytes);
  EXPECT_EQ(checkpoint_error(bad),
            "checkpoint '" + bad + "': dataset 'model/" + tensor + "' is corrupt (crc32 mismatch)");

  // one character of the stored config
  const size_t at = original.find("epochs = 2");
  ASSERT_NE(at, std::string::npos);
  bytes = original;
  bytes[at + 9] = '3';
  spit_binary(bad, bytes);
  EXPECT_EQ(checkpoint_error(bad),
            "checkpoint '" + bad + "': attributes are corrupt (crc32 mismatch)");
  fs::remove_all(dir);
}

// format 1 (before checksums) still loads; a format 2 file cannot pass for one, and a missing
// checksum is refused
TEST(Checkpoint, ChecksumsAreRequiredFromFormatTwo) {
  auto dir = temp_dir("format1");
  const auto ck = small_checkpoint();
  const auto path = (dir / "c.h5").string();
  write_checkpoint(ck, path);
  const auto old = (dir / "old.h5").string(), downgraded = (dir / "downgraded.h5").string(),
             unchecked = (dir / "unchecked.h5").string();
  fs::copy_file(path, old);
  fs::copy_file(path, downgraded);
  fs::copy_file(path, unchecked);
  {
    H5Edit edit(old);
    edit.set_format_version(1);
    edit.drop_attribute(".", "attributes_crc32");
    for (const auto& [name, t] : ck.tensors) edit.drop_attribute("model/" + name, "crc32");
    edit.drop_attribute("optimizer/archive", "crc32");
    edit.drop_attribute("metrics/history", "crc32");
  }
  const auto back = read_checkpoint(old);
  EXPECT_EQ(back.format_version, 1);
  EXPECT_EQ(checkpoint_difference(back, ck), "");
  {
    H5Edit edit(downgraded);
    edit.set_format_version(1);
  }
  EXPECT_NE(checkpoint_error(downgraded).find("format_version 1 but the file has checksums"),
            std::string::npos);
  {
    H5Edit edit(unchecked);
    edit.drop_attribute("model/fc.bias", "crc32");
  }
  EXPECT_EQ(checkpoint_error(unchecked), "checkpoint '" + unchecked +
                                             "': dataset 'model/fc.bias' has no checksum "
                                             "(attribute 'crc32')");
  // rewriting a format 1 checkpoint upgrades it
  write_checkpoint(back, path);
  EXPECT_EQ(read_checkpoint(path).format_version, 2);
  fs::remove_all(dir);
}

// a writer's temporary is unique and gone afterwards; those of dead writers are cleared; a
// folder at the path is refused, not swapped out
TEST(Checkpoint, WritesLeaveOnlyTheCheckpoint) {
  auto dir = temp_dir("durable");
  const auto ck = small_checkpoint();
  const auto path = (dir / "c.h5").string();
  std::ofstream(path + ".tmp.999999999.1") << "left by a writer that died";
  write_checkpoint(ck, path);
  write_checkpoint(ck, path);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"c.h5"});
  EXPECT_EQ(checkpoint_difference(read_checkpoint(path), ck), "");

  const auto folder = dir / "folder.h5";
  fs::create_directories(folder / "inside");
  try {
    write_checkpoint(ck, folder.string());
    FAIL() << "a folder was overwritten";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_directory(folder / "inside"));
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

// --out ./run and run are the same folder: resume compares where paths lead, not their spelling
TEST(Training, ResumeComparesPathsByWhereTheyLead) {
  auto dir = temp_dir("resume_paths");
  write_quadrant_set(dir / "train.h5", 128, 1);
  write_quadrant_set(dir / "test.h5", 32, 2);
  std::ostringstream log;
  auto first = tiny_config(dir, dir / "run");
  first.train.epochs = 3;
  train(first, false, log, /*stop_after=*/1);

  auto dotted = first;
  dotted.out_dir = (dir / "." / "sub" / ".." / "run" / "").string();
  dotted.data.root = (dir / ".").string();
  EXPECT_EQ(train(dotted, true, log, /*stop_after=*/2).epochs_run, 1) << log.str();

  auto relative = first;
  relative.out_dir = fs::proximate(dir / "run").string();
  ASSERT_TRUE(fs::path(relative.out_dir).is_relative());
  EXPECT_EQ(train(relative, true, log).epochs_run, 1) << log.str();
  EXPECT_EQ(read_checkpoint((dir / "run" / "checkpoint.h5").string()).epoch, 3);

  // another folder is still a difference
  fs::create_directories(dir / "elsewhere");
  fs::copy_file(dir / "train.h5", dir / "elsewhere" / "train.h5");
  fs::copy_file(dir / "test.h5", dir / "elsewhere" / "test.h5");
  auto other = first;
  other.data.root = (dir / "elsewhere").string();
  try {
    train(other, true, log);
    FAIL() << "a different data.root was resumed";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("config differs"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// a run whose loss stops being finite ends with an error naming where, not a NaN checkpoint
TEST(Training, NonFiniteLossStopsTheRun) {
  auto dir = temp_dir("diverge");
  write_quadrant_set(dir / "train.h5", 128, 1);
  write_quadrant_set(dir / "test.h5", 32, 2);
  std::ostringstream log;
  auto c = tiny_config(dir, dir / "out");
  c.train.lr = 1e30;
  try {
    train(c, false, log);
    FAIL() << "a diverging run finished: " << log.str();
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("training diverged: loss is"), std::string::npos) << what;
    EXPECT_NE(what.find("at epoch 1/2, step "), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  EXPECT_FALSE(fs::exists(dir / "out" / "checkpoint.h5"));
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

TEST(Cli, BadConfigStopsBeforeAnythingIsWritten) {
  auto dir = temp_dir("cli_config");
  const auto out = (dir / "o").string();
  auto one_line = [](const CliResult& r) {
    return std::count(r.err.begin(), r.err.end(), '\n') == 1;
  };
  std::ofstream(dir / "decay.ini") << "[train]\nweight_decay = inf\n";
  auto r = run_cli("train --config " + (dir / "decay.ini").string() + " --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("config key 'train.weight_decay' must be finite and >= 0, got inf"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(one_line(r)) << r.err;

  r = run_cli("train --config " + (dir / "decay.ini").string() +
              " --train.weight_decay 0 --train.warmup_epochs inf --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("train.warmup_epochs"), std::string::npos) << r.err;

  fs::create_directories(dir / "folder.ini");
  r = run_cli("train --config " + (dir / "folder.ini").string() + " --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("config file '" + (dir / "folder.ini").string() + "' is a directory"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(one_line(r)) << r.err;

  std::ofstream(dir / "empty.ini").close();
  r = run_cli("train --config " + (dir / "empty.ini").string() + " --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("is empty"), std::string::npos) << r.err;
  EXPECT_TRUE(one_line(r)) << r.err;

  std::ofstream(dir / "seed.ini") << "[train]\nseed = -1\n";
  r = run_cli("train --config " + (dir / "seed.ini").string() + " --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("train.seed"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
}

TEST(Cli, DivergedTrainingExitsNonZero) {
  auto dir = temp_dir("cli_diverge");
  write_quadrant_set(dir / "train.h5", 128, 1);
  write_quadrant_set(dir / "test.h5", 32, 2);
  std::ofstream(dir / "c.ini") << "[data]\nformat = hdf5\nroot = " << dir.string()
                               << "\nworkers = 0\nhorizontal_flip = false\n[model]\nstem_width = "
                                  "4\nwidths = 4,8\ndepths = 1,1\n[train]\nepochs = 2\nbatch_size "
                                  "= 16\nlr = 1e30\nthreads = 1\n";
  const auto r =
      run_cli("train --config " + (dir / "c.ini").string() + " --out " + (dir / "o").string());
  EXPECT_EQ(r.code, 1) << r.err;
  // the progress lines come first; the error is the last line
  const std::string last = r.err.substr(r.err.rfind('\n', r.err.size() - 2) + 1);
  EXPECT_EQ(last.rfind("adascale train: training diverged: loss is ", 0), 0u) << r.err;
  EXPECT_NE(last.find("at epoch 1/2, step "), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "o" / "checkpoint.h5"));
  fs::remove_all(dir);
}
