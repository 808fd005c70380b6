// Multi-branch runs resume: stopped by --stop-after or killed with SIGKILL during the joint phase,
// a resumed run ends with the same weights as an uninterrupted one (same seed and threads).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "fmnist_slice.h"
#include "trainer/checkpoint.h"
#include "trainer/config.h"

namespace fs = std::filesystem;
using namespace adascale;
using namespace adascale::trainer;

namespace {

fs::path make_config(const fs::path& dir) {
  TrainConfig c = adascale::testing::fashion_mnist_slice(600, 100, dir / "unused");
  c.model.widths = {8, 16};
  c.train.batch_size = 32;
  c.supernet.widths = "1.0,0.5";
  c.supernet.ops = "conv,dpconv";
  c.supernet.exits = "1";
  c.supernet.joint_epochs = 3;
  c.supernet.sampled = 1;
  c.supernet.distill_steps = 5;
  c.supernet.calibration_images = 64;
  const auto path = dir / "config.ini";
  std::ofstream(path) << c.to_ini();
  return path;
}

int run_cli(const std::string& args) {
  const std::string cmd = std::string(ADASCALE_CLI) + " train " + args + " >/dev/null 2>&1";
  return std::system(cmd.c_str());
}

// every tensor of two checkpoints, bit for bit
void expect_same_weights(const fs::path& a, const fs::path& b) {
  const auto x = read_checkpoint(a.string()), y = read_checkpoint(b.string());
  ASSERT_EQ(x.tensors.size(), y.tensors.size());
  for (const auto& [name, t] : x.tensors) {
    ASSERT_TRUE(y.tensors.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, y.tensors.at(name))) << name;
  }
  EXPECT_EQ(x.test_accuracy, y.test_accuracy);
}

}  // namespace

TEST(SupernetResume, StoppedOrKilledInTheJointPhaseEndsWithTheSameWeights) {
  if (!adascale::testing::has_fashion_mnist()) GTEST_SKIP() << "no Fashion-MNIST";
  const auto dir = fs::temp_directory_path() / ("adascale_resume_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto config = make_config(dir);
  const std::string base = "--config " + config.string() + " --out ";

  ASSERT_EQ(run_cli(base + (dir / "whole").string()), 0);

  // --stop-after counts the warm-up's epoch, then joint epochs: 2 stops after the first joint one
  const auto stopped = dir / "stopped";
  ASSERT_EQ(run_cli(base + stopped.string() + " --stop-after 2"), 0);
  EXPECT_EQ(read_checkpoint((stopped / "joint" / "checkpoint.h5").string()).epoch, 1);
  EXPECT_FALSE(fs::exists(stopped / "checkpoint.h5"));
  ASSERT_EQ(run_cli(base + stopped.string() + " --resume"), 0);
  expect_same_weights(dir / "whole" / "checkpoint.h5", stopped / "checkpoint.h5");

  // SIGKILL as soon as the first joint checkpoint exists, i.e. inside the second joint epoch
  const auto killed = dir / "killed";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string out = killed.string(), cfg = config.string();
    ::freopen("/dev/null", "w", stdout);
    ::freopen("/dev/null", "w", stderr);
    ::execl(ADASCALE_CLI, ADASCALE_CLI, "train", "--config", cfg.c_str(), "--out", out.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  bool exited = false;
  while (!fs::exists(killed / "joint" / "checkpoint.h5")) {
    if (::waitpid(child, &status, WNOHANG) == child) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(exited) << "the run ended before its first joint checkpoint, status " << status;
  ::kill(child, SIGKILL);
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_FALSE(fs::exists(killed / "checkpoint.h5")) << "the run finished before the kill";
  ASSERT_EQ(run_cli(base + killed.string() + " --resume"), 0);
  expect_same_weights(dir / "whole" / "checkpoint.h5", killed / "checkpoint.h5");
  fs::remove_all(dir);
}
