// `adascale train` as ranks of one run, on slices of Fashion-MNIST: the local launcher, resuming
// with another world size, a rank killed mid-epoch, ranks that disagree, a rendezvous that never
// completes, and the branch draws of a multi-branch run.
#include <gtest/gtest.h>
#include <signal.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "command_result.h"
#include "fmnist_slice.h"
#include "trainer/checkpoint.h"
#include "trainer/local_launcher.h"

namespace fs = std::filesystem;
using namespace adascale;
using adascale::testing::run_command;

namespace {

class DistributedCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!adascale::testing::has_fashion_mnist()) GTEST_SKIP() << "no Fashion-MNIST";
    dir_ = fs::temp_directory_path() /
           ("adascale_distributed_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // a config file of the slice, plain or multi-branch
  std::string write_config(trainer::TrainConfig c, const std::string& name) {
    c.model.widths = {8, 16};
    const auto path = dir_ / (name + ".ini");
    std::ofstream(path) << c.to_ini();
    return path.string();
  }
  std::string cli() const { return std::string(ADASCALE_CLI) + " train "; }

  fs::path dir_;
};

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// environment of one rank of a two-rank run started by hand (as a scheduler would)
std::string rank_env(int rank, int port) {
  return "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
         " WORLD_SIZE=2 LOCAL_RANK=" + std::to_string(rank) + " RANK=" + std::to_string(rank) + " ";
}

}  // namespace

TEST_F(DistributedCli, TwoLocalRanksTrainAndResumeInOneProcess) {
  auto c = adascale::testing::fashion_mnist_slice(1536, 300, dir_ / "out");
  c.train.epochs = 2;
  c.train.batch_size = 64;
  const auto config = write_config(c, "plain");
  const auto first = run_command(cli() + "--config " + config + " --nproc 2 --stop-after 1");
  ASSERT_EQ(first.code, 0) << first.output;
  EXPECT_NE(
      first.output.find("data-parallel: 2 ranks x 1 thread(s), global batch 64 (32 per rank)"),
      std::string::npos)
      << first.output;
  // one rank speaks: one line per epoch
  EXPECT_EQ(count_of(first.output, "epoch   1/2"), 1) << first.output;
  EXPECT_EQ(trainer::read_checkpoint((dir_ / "out" / "checkpoint.h5").string()).epoch, 1);
  // the same run continues in one process: the global batch and its order do not change
  const auto second = run_command(cli() + "--config " + config + " --resume");
  ASSERT_EQ(second.code, 0) << second.output;
  EXPECT_NE(second.output.find("after epoch 1"), std::string::npos) << second.output;
  EXPECT_NE(second.output.find("epoch   2/2"), std::string::npos) << second.output;
  EXPECT_NE(second.output.find("test: accuracy"), std::string::npos) << second.output;
}

TEST_F(DistributedCli, KilledRankStopsTheOthersAndKeepsTheLastCheckpoint) {
  auto c = adascale::testing::fashion_mnist_slice(6000, 200, dir_ / "out");
  c.train.epochs = 4;
  const auto config = write_config(c, "plain");
  const auto log = dir_ / "log", rc = dir_ / "rc";
  ASSERT_EQ(std::system(("(" + cli() + "--config " + config + " --nproc 2 >" + log.string() +
                         " 2>&1; echo $? >" + rc.string() + ") &")
                            .c_str()),
            0);
  const auto checkpoint = dir_ / "out" / "checkpoint.h5";
  // generous bounds: a hang fails the test, a slow machine does not
  for (int i = 0; i < 2400 && !fs::exists(checkpoint) && !fs::exists(rc); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(checkpoint)) << read_text(log);
  std::smatch m;
  const std::string started = read_text(log);
  ASSERT_TRUE(std::regex_search(started, m, std::regex("rank 1: pid ([0-9]+)"))) << started;
  ASSERT_EQ(::kill(std::stoi(m[1]), SIGKILL), 0);
  for (int i = 0; i < 2400 && !fs::exists(rc); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(rc)) << "the run did not end after a rank was killed";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(read_text(rc), "1\n");
  const std::string out = read_text(log);
  EXPECT_NE(out.find("rank 1 was killed by signal 9"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("adascale train: rank 1 stopped during "
                                                "[a-z ]*epoch [0-9]+[^(]* \\(no heartbeat")))
      << out;
  const auto kept = trainer::read_checkpoint(checkpoint.string());
  EXPECT_GE(kept.epoch, 1);
  EXPECT_LT(kept.epoch, 4);
}

TEST_F(DistributedCli, RanksThatDisagreeRefuseToStart) {
  auto c = adascale::testing::fashion_mnist_slice(512, 100, dir_ / "out");
  const auto config = write_config(c, "plain");
  auto both = [&](const std::string& rank0_extra, const std::string& rank1_extra) {
    const int port = trainer::free_loopback_port();
    const auto log0 = dir_ / "r0", log1 = dir_ / "r1";
    const std::string cmd =
        "(" + rank_env(0, port) + cli() + "--config " + config + " --out " + (dir_ / "a").string() +
        rank0_extra + " >" + log0.string() + " 2>&1 & " + rank_env(1, port) + cli() + "--config " +
        config + " --out " + (dir_ / "b").string() + rank1_extra + " >" + log1.string() +
        " 2>&1; echo $? >>" + log1.string() + "; wait $!; echo $? >>" + log0.string() + ")";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    return std::pair{read_text(log0), read_text(log1)};
  };
  {
    const auto [r0, r1] = both("", " --train.lr 0.2");
    for (const auto& out : {r0, r1}) {
      EXPECT_NE(out.find("ranks disagree on the config: rank 1 differs from rank 0 at [train] "
                         "'lr = 0.05"),
                std::string::npos)
          << out;
      EXPECT_NE(out.find("\n1\n"), std::string::npos) << out;
    }
  }
  {
    // other data under the same config: rank 1's "training images" are the test images
    const auto swapped = dir_ / "swapped";
    fs::create_directories(swapped);
    const fs::path root = data::default_fashion_mnist_root();
    for (const char* kind : {"images-idx3-ubyte.gz", "labels-idx1-ubyte.gz"}) {
      fs::create_symlink(root / (std::string("t10k-") + kind),
                         swapped / (std::string("train-") + kind));
      fs::create_symlink(root / (std::string("t10k-") + kind),
                         swapped / (std::string("t10k-") + kind));
    }
    const auto [r0, r1] = both("", " --data.root " + swapped.string());
    for (const auto& out : {r0, r1})
      EXPECT_NE(out.find("ranks disagree on the data: rank 1 differs from rank 0 at 'train = 512 "
                         "images of 1x28x28, 10 classes, crc32"),
                std::string::npos)
          << out;
  }
  // a rendezvous that never completes
  const int port = trainer::free_loopback_port();
  const auto alone =
      run_command(rank_env(0, port) + cli() + "--config " + config + " --rendezvous-timeout 1");
  EXPECT_EQ(alone.code, 1);
  EXPECT_NE(alone.output.find("timed out after 1 s: 1 of 2 ranks joined (missing: rank 1)"),
            std::string::npos)
      << alone.output;
  EXPECT_FALSE(fs::exists(dir_ / "out" / "checkpoint.h5"));
}

TEST_F(DistributedCli, ShippedMultiBranchConfigTrainsTheSameBranchesOnEveryRank) {
  // the shipped branch space and sampling rule, on a slice, with short phases
  const std::string shipped = std::string(ADASCALE_SOURCE_DIR) + "/configs/fmnist_supernet.ini";
  const auto r = run_command(
      cli() + "--config " + shipped + " --nproc 2 --threads 1 --out " + (dir_ / "out").string() +
      " --epochs 1 --data.limit_train 1280 --data.limit_test 100 --data.workers 1"
      " --supernet.joint_epochs 1 --supernet.distill_steps 3 --supernet.calibration_images 64"
      " --supernet.qat_images 64 --supernet.qat_steps 2");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("data-parallel: 2 ranks x 1 thread(s), global batch 128 (64 per rank)"),
            std::string::npos)
      << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.output, m, std::regex("the branches drawn were the same on all 2 ranks in ([0-9]+) steps")))
      << r.output;
  EXPECT_EQ(std::stoi(m[1]), 1152 / 128);  // every step of the joint epoch (10% validation)
  EXPECT_EQ(count_of(r.output, "phase 5/5"), 1) << r.output;  // rank 0 evaluates and writes
  EXPECT_TRUE(fs::exists(dir_ / "out" / "summary.json"));
}

TEST_F(DistributedCli, CudaDeviceTrainsWhereOneExistsAndIsRefusedOtherwise) {
  auto c = adascale::testing::fashion_mnist_slice(512, 100, dir_ / "out");
  const auto config = write_config(c, "plain");
  const auto r = run_command(cli() + "--config " + config + " --train.device cuda");
  if (!torch::cuda::is_available()) {
    // refused before anything is trained or written, naming the key
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find("train.device = cuda: "), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "out" / "checkpoint.h5"));
    GTEST_SKIP() << "no CUDA device here: training on one is not tested";
  }
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("test: accuracy"), std::string::npos) << r.output;
}
