// Color images end to end: a small learnable RGB data set generated here (no color data set ships
// with Debian) goes through the CLI (train, compress, export) into bundles that the C API runs.
// Covers both backbone families: a MobileNetV2 trained alone and pruned, a ResNet multi-branch
// network with a shallow (elastic depth) branch and a MobileNetV2 multi-branch network with a
// shallow branch, an early exit and low-rank 1x1 branches, each with int8 twins, and the
// per-channel normalization the catalog carries to the runtime.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <string>
#include <vector>

#include "adascale.h"

namespace fs = std::filesystem;

namespace {

constexpr int kSize = 16;
const char* const kClasses[] = {"blue", "green", "red", "yellow"};  // folder order

// an image of class k: a noisy dark background and a square of the class's color, of random
// size, place and brightness; RGB planes in [0, 1] (what the runtime takes) and the BGR image
struct Sample {
  std::vector<float> rgb;  // CHW
  cv::Mat bgr;
  int label = 0;
};

Sample make_sample(int k, std::mt19937& rng) {
  static const int kColor[4][3] = {{40, 60, 220}, {40, 200, 60}, {220, 50, 40}, {220, 210, 40}};
  std::uniform_int_distribution<int> noise(0, 60), side(5, 11), shift(-25, 25);
  Sample s;
  s.label = k;
  s.bgr = cv::Mat(kSize, kSize, CV_8UC3);
  for (int y = 0; y < kSize; ++y)
    for (int x = 0; x < kSize; ++x)
      for (int c = 0; c < 3; ++c) s.bgr.at<cv::Vec3b>(y, x)[c] = static_cast<uint8_t>(noise(rng));
  const int n = side(rng);
  std::uniform_int_distribution<int> at(0, kSize - n);
  const int y0 = at(rng), x0 = at(rng), d = shift(rng);
  for (int y = y0; y < y0 + n; ++y)
    for (int x = x0; x < x0 + n; ++x)
      for (int c = 0; c < 3; ++c)  // BGR: channel c is RGB channel 2 - c
        s.bgr.at<cv::Vec3b>(y, x)[c] =
            static_cast<uint8_t>(std::clamp(kColor[k][2 - c] + d, 0, 255));
  s.rgb.resize(3 * kSize * kSize);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < kSize; ++y)
      for (int x = 0; x < kSize; ++x)
        s.rgb[(c * kSize + y) * kSize + x] = s.bgr.at<cv::Vec3b>(y, x)[2 - c] / 255.0f;
  return s;
}

class RgbEndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("adascale_rgb_e2e_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    std::mt19937 rng(7);
    test_ = new std::vector<Sample>;
    for (const char* split : {"train", "test"})
      for (int k = 0; k < 4; ++k) {
        const fs::path folder = *dir_ / "data" / split / kClasses[k];
        fs::create_directories(folder);
        for (int i = 0; i < (split == std::string("train") ? 120 : 40); ++i) {
          auto s = make_sample(k, rng);
          ASSERT_TRUE(cv::imwrite((folder / (std::to_string(i) + ".png")).string(), s.bgr));
          if (split == std::string("test")) test_->push_back(std::move(s));
        }
      }
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete test_;
  }

  // a config for the generated folder: 16x16 RGB, 4 epochs, one thread
  static std::string config(const std::string& model, const std::string& extra = "") {
    const fs::path path = *dir_ / (std::to_string(configs_++) + ".ini");
    std::ofstream(path) << "name = rgb\n[data]\nformat = folder\nroot = "
                        << (*dir_ / "data").string()
                        << "\nimage_size = 16\nchannels = 3\ncrop_padding = 0\nworkers = 1\n"
                        << "validation_fraction = 0.1\n[model]\n"
                        << model
                        << "\n[train]\nepochs = 4\nbatch_size = 32\nlr = 0.05\nthreads = 1\n"
                           "warmup_epochs = 0.2\nseed = 3\n"
                        << extra;
    return path.string();
  }

  static int cli(const std::string& args) {
    return std::system((std::string(ADASCALE_CLI) + " " + args + " >/dev/null 2>&1").c_str());
  }
  // the CLI's output (stdout and stderr) and its exit status
  static std::pair<int, std::string> cli_output(const std::string& args) {
    FILE* pipe = ::popen((std::string(ADASCALE_CLI) + " " + args + " 2>&1").c_str(), "r");
    std::string out;
    char buf[512];
    while (pipe && std::fgets(buf, sizeof buf, pipe)) out += buf;
    const int status = pipe ? ::pclose(pipe) : -1;
    return {status, out};
  }

  // every branch of a bundle through the C API on the generated test images: its top-1 accuracy
  // and the catalog's (the exporter's, measured in the runtime)
  static void expect_learned(const std::string& bundle, double min_accuracy) {
    adascale_runtime* rt = nullptr;
    ASSERT_EQ(adascale_open(bundle.c_str(), &rt), ADASCALE_OK) << bundle;
    int64_t dims[4];
    ASSERT_EQ(adascale_input_shape(rt, dims), ADASCALE_OK);
    EXPECT_EQ(dims[1], 3);
    EXPECT_EQ(dims[2], kSize);
    size_t branches = 0;
    ASSERT_EQ(adascale_branch_count(rt, &branches), ADASCALE_OK);
    // per-channel normalization, measured on the training split, travels in the catalog
    const auto catalog = nlohmann::json::parse(std::ifstream(fs::path(bundle) / "catalog.json"));
    const auto mean = catalog.at("input").at("mean").get<std::vector<double>>();
    ASSERT_EQ(mean.size(), 3u);
    EXPECT_NE(mean[0], mean[1]);
    for (size_t b = 0; b < branches; ++b) {
      adascale_branch_info info;
      ASSERT_EQ(adascale_branch_info_at(rt, b, &info), ADASCALE_OK);
      ASSERT_EQ(adascale_select(rt, info.name), ADASCALE_OK) << info.name;
      int correct = 0;
      for (const auto& s : *test_) {
        float logits[4];
        ASSERT_EQ(adascale_run(rt, s.rgb.data(), s.rgb.size(), logits, 4), ADASCALE_OK);
        correct += static_cast<int>(std::max_element(logits, logits + 4) - logits) == s.label;
      }
      const double accuracy = static_cast<double>(correct) / static_cast<double>(test_->size());
      EXPECT_GE(accuracy, min_accuracy) << info.name;
      // the same images, normalized by the runtime instead of the trainer: a near tie may flip
      const double catalog_accuracy = nlohmann::json::parse(info.costs_json).at("accuracy");
      EXPECT_NEAR(accuracy, catalog_accuracy, 0.02) << info.name;
    }
    adascale_close(rt);
  }

  // a multi-branch run of `model` naming a backbone checkpoint of the other family (`family`):
  // one line naming the checkpoint, before anything is written to `out`
  static void expect_other_family_refused(const std::string& model, const std::string& backbone,
                                          const std::string& family, const std::string& out) {
    const auto [status, text] = cli_output(
        "train --config " +
        config(model, "[supernet]\nwidths = 1.0,0.5\njoint_schedule = restart\nbackbone = " +
                          backbone + "\n") +
        " --out " + out);
    EXPECT_NE(status, 0);
    const auto line = text.find("adascale train: supernet.backbone '" + backbone + "'");
    ASSERT_NE(line, std::string::npos) << text;
    EXPECT_NE(text.find("is a different architecture (" + family), std::string::npos) << text;
    EXPECT_LT(text.find("is a different architecture"), text.find('\n', line)) << text;
    EXPECT_FALSE(fs::exists(out));
  }

  static fs::path* dir_;
  static std::vector<Sample>* test_;
  static int configs_;
};

fs::path* RgbEndToEnd::dir_ = nullptr;
std::vector<Sample>* RgbEndToEnd::test_ = nullptr;
int RgbEndToEnd::configs_ = 0;

TEST_F(RgbEndToEnd, MobileNetV2TrainedPrunedExportedAndRun) {
  const std::string out = (*dir_ / "mbv2").string();
  ASSERT_EQ(cli("train --config " +
                config("arch = mobilenetv2\nstem_width = 8\nwidths = 8,16,24\ndepths = 1,2,1\n"
                       "expansion = 4") +
                " --out " + out),
            0);
  const std::string ckpt = out + "/checkpoint.h5";
  ASSERT_EQ(cli("compress --checkpoint " + ckpt + " --ops prune:0.5 --calibration 64 --out " + out +
                "/pruned.h5"),
            0);
  // the ResNet operators that replace 3x3 convolutions have nothing to act on: one line, no file
  const auto [refused, why] =
      cli_output("compress --checkpoint " + ckpt + " --ops dpconv --out " + out + "/dp.h5");
  EXPECT_NE(refused, 0);
  EXPECT_NE(why.find("--ops dpconv does not apply to a mobilenetv2"), std::string::npos) << why;
  // a prune by stage: the stage must exist and expand (the first stage does not)
  EXPECT_NE(
      cli_output("compress --checkpoint " + ckpt + " --ops prune:0.5@1 --out " + out + "/p1.h5")
          .second.find("stage 1 has no expansion channels to prune"),
      std::string::npos);
  EXPECT_NE(
      cli_output("compress --checkpoint " + ckpt + " --ops prune:0.5@4 --out " + out + "/p4.h5")
          .second.find("stage 4 does not exist (the network has 3 stages)"),
      std::string::npos);
  ASSERT_EQ(cli("compress --checkpoint " + ckpt + " --ops prune:0.5@3 --calibration 64 --out " +
                out + "/p3.h5"),
            0);
  EXPECT_FALSE(fs::exists(out + "/dp.h5"));
  ASSERT_EQ(cli("export --checkpoint " + ckpt + " --checkpoint " + out + "/pruned.h5" +
                " --precisions fp32,int8 --qat-steps 0 --latency-runs 5 --latency-threads 1" +
                " --out " + out + "/m.bundle"),
            0);
  expect_learned(out + "/m.bundle", 0.85);
  // a checkpoint of the other family as a ResNet multi-branch network's backbone
  expect_other_family_refused("arch = resnet\nstem_width = 8\nwidths = 8,16\ndepths = 1,2", ckpt,
                              "mobilenetv2", out + "/wrong");
}

TEST_F(RgbEndToEnd, ResNetBranchesWithElasticDepthExportedAndRun) {
  const std::string out = (*dir_ / "supernet").string();
  ASSERT_EQ(cli("train --config " +
                config("arch = resnet\nstem_width = 8\nwidths = 8,16\ndepths = 1,2",
                       "[supernet]\nwidths = 1.0,0.5\ndepths = d1/2@2\njoint_epochs = 2\n"
                       "calibration_images = 64\nprecisions = fp32,int8\nqat_images = 128\n"
                       "qat_steps = 0\n") +
                " --out " + out),
            0);
  ASSERT_EQ(cli("export --checkpoint " + out + "/checkpoint.h5 --latency-runs 5" +
                " --latency-threads 1 --out " + out + "/m.bundle"),
            0);
  expect_learned(out + "/m.bundle", 0.8);
  // the ResNet backbone this run warmed up, named as a MobileNetV2 multi-branch network's
  const std::string resnet = out + "/backbone/checkpoint.h5";
  ASSERT_TRUE(fs::exists(resnet));
  expect_other_family_refused(
      "arch = mobilenetv2\nstem_width = 8\nwidths = 8,16\ndepths = 1,2\nexpansion = 4", resnet,
      "resnet", out + "/wrong");
}

TEST_F(RgbEndToEnd, MobileNetV2BranchesWithDepthAndExitExportedAndRun) {
  const std::string out = (*dir_ / "mbv2_supernet").string();
  ASSERT_EQ(cli("train --config " +
                config("arch = mobilenetv2\nstem_width = 8\nwidths = 8,16,24\ndepths = 1,2,2\n"
                       "expansion = 4",
                       "[supernet]\nwidths = 1.0,0.5\nops = conv,lowrank0.5\nop_stages = 3\n"
                       "depths = d1/2@3\nexits = 2\n"
                       "joint_epochs = 2\ncalibration_images = 64\nprecisions = fp32,int8\n"
                       "qat_images = 128\nqat_steps = 0\n") +
                " --out " + out),
            0);
  ASSERT_EQ(cli("export --checkpoint " + out + "/checkpoint.h5 --latency-runs 5" +
                " --latency-threads 1 --out " + out + "/m.bundle"),
            0);
  // 2 widths x {full, d1/2@3, exit@2} with plain 1x1 convolutions, and {full, d1/2@3} with
  // low-rank ones in stage 3 (an exit after stage 2 does not reach it), each with its int8 twin
  const auto catalog =
      nlohmann::json::parse(std::ifstream(fs::path(out) / "m.bundle" / "catalog.json"));
  EXPECT_EQ(catalog.at("branches").size(), 20u);
  expect_learned(out + "/m.bundle", 0.75);
}

}  // namespace
