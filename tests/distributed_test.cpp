// Data-parallel training: ranks in threads of this process for the arithmetic (sharding,
// gradient sums, agreement checks), ranks as processes of the CLI for launching and faults.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "command_result.h"
#include "compress/batch_norm.h"
#include "datasets/batch_loader.h"
#include "fmnist_slice.h"
#include "trainer/checkpoint.h"
#include "trainer/gradient_reducer.h"
#include "trainer/local_launcher.h"
#include "trainer/rank_group.h"
#include "trainer/sync_batch_norm.h"

namespace fs = std::filesystem;
using namespace adascale;
using namespace adascale::trainer;

namespace {

// runs fn(group) on `world` threads, one rank each; returns each rank's error ("" when none)
template <typename Fn>
std::vector<std::string> on_ranks(int world, Fn fn) {
  RendezvousOptions o;
  o.port = free_loopback_port();
  o.world = world;
  o.timeout = std::chrono::seconds(30);
  std::vector<std::string> errors(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        RendezvousOptions mine = o;
        mine.rank = r;
        auto group = RankGroup::join(mine);
        RankScope scope(group.get());
        fn(*group);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

data::DatasetPtr random_images(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  data::ImageShape shape{1, 8, 8};
  std::vector<uint8_t> pixels(static_cast<size_t>(n * shape.numel()));
  for (auto& p : pixels) p = static_cast<uint8_t>(rng() & 0xff);
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (auto& l : labels) l = static_cast<int64_t>(rng() % 4);
  return std::make_shared<data::InMemoryDataset>(shape, std::move(pixels), std::move(labels),
                                                 std::vector<std::string>{"a", "b", "c", "d"},
                                                 "generated");
}

data::LoaderOptions augmented_batches(int64_t batch) {
  data::LoaderOptions o;
  o.batch_size = batch;
  o.workers = 0;
  o.seed = 7;
  o.augment.crop_padding = 1;
  o.augment.horizontal_flip = true;
  return o;
}

// the rank's shard of augmented_batches(16) over `set`
std::unique_ptr<data::BatchLoader> rank_shard(const data::DatasetPtr& set, const RankGroup& group) {
  auto o = augmented_batches(16);
  o.shard_rank = group.rank();
  o.shard_count = group.world();
  return std::make_unique<data::BatchLoader>(set, data::all_indices(set->size()), o);
}

// make() with the parameters `init` (in parameters() order)
template <typename Make>
auto initialised(const Make& make, const std::vector<torch::Tensor>& init) {
  auto net = make();
  torch::NoGradGuard no_grad;
  auto params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(init[i]);
  return net;
}

std::vector<torch::Tensor> copies(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().clone());
  return out;
}

// a network without BatchNorm: its gradient over a batch is the mean of per-image gradients
torch::nn::Sequential bn_free_net() {
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 6, 3)),
                               torch::nn::ReLU(), torch::nn::Flatten(),
                               torch::nn::Linear(6 * 6 * 6, 4));
}

// a network with a BatchNorm, run through compress::batch_norm as the ResNets are
struct BnNetImpl : torch::nn::Module {
  BnNetImpl()
      : conv(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 6, 3)))),
        bn(register_module("bn", torch::nn::BatchNorm2d(6))),
        fc(register_module("fc", torch::nn::Linear(6 * 6 * 6, 4))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return fc(torch::relu(compress::batch_norm(*bn, conv(x))).flatten(1));
  }
  torch::nn::Conv2d conv;
  torch::nn::BatchNorm2d bn;
  torch::nn::Linear fc;
};
TORCH_MODULE(BnNet);

// k SGD steps (momentum, weight decay) of `net` on the loader's batches; with a group, each
// rank's gradients are summed by a GradientReducer weighted by the rank's share of the batch
// (and on_weight, when given, learns that share before the step)
template <typename Net>
void sgd_steps(Net& net, data::BatchLoader& loader, int k, GradientReducer* reducer,
               const std::function<void(double)>& on_weight = nullptr) {
  torch::optim::SGD sgd(net->parameters(),
                        torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(1e-3));
  loader.start_epoch(0);
  for (int s = 0; s < k; ++s) {
    auto batch = loader.next();
    ASSERT_TRUE(batch.has_value());
    sgd.zero_grad();
    const double weight = static_cast<double>(batch->labels.size(0)) / loader.global_rows(s);
    if (on_weight) on_weight(weight);
    if (reducer) reducer->arm(weight);
    torch::nn::functional::cross_entropy(net->forward(batch->images), batch->labels).backward();
    if (reducer) reducer->finish(weight);
    sgd.step();
  }
}

}  // namespace

TEST(DataParallel, ShardsTogetherAreTheWholeBatch) {
  auto set = random_images(70, 1);
  auto o = augmented_batches(16);  // 4 full batches and one of 6 rows
  data::BatchLoader whole(set, data::all_indices(70), o);
  for (int k : {2, 3}) {
    std::vector<std::unique_ptr<data::BatchLoader>> shards;
    for (int r = 0; r < k; ++r) {
      auto so = o;
      so.shard_rank = r;
      so.shard_count = k;
      shards.push_back(std::make_unique<data::BatchLoader>(set, data::all_indices(70), so));
      shards.back()->start_epoch(3);
    }
    whole.start_epoch(3);
    int64_t batches = 0;
    while (auto full = whole.next()) {
      std::vector<torch::Tensor> images, labels;
      for (auto& s : shards) {
        auto part = s->next();
        ASSERT_TRUE(part.has_value());
        images.push_back(part->images);
        labels.push_back(part->labels);
      }
      // the same rows, crops and flips: bit for bit
      EXPECT_TRUE(torch::equal(torch::cat(images), full->images)) << "batch " << batches;
      EXPECT_TRUE(torch::equal(torch::cat(labels), full->labels)) << "batch " << batches;
      ++batches;
    }
    EXPECT_EQ(batches, 5);
    for (auto& s : shards) EXPECT_FALSE(s->next().has_value());
  }
  auto bad = o;
  bad.shard_rank = 2;
  bad.shard_count = 2;
  EXPECT_THROW(data::BatchLoader(set, data::all_indices(70), bad), data::DataError);
}

class DataParallelSteps : public ::testing::TestWithParam<bool> {};

TEST_P(DataParallelSteps, TwoRanksWithHalfBatchesMatchOneRankWithTheWholeBatch) {
  torch::set_num_threads(1);
  auto set = random_images(96, 2);
  torch::manual_seed(3);
  const auto init = copies(bn_free_net()->parameters());
  auto fresh = [&] { return initialised(bn_free_net, init); };
  const int steps = 6;
  auto single = fresh();
  data::BatchLoader loader(set, data::all_indices(96), augmented_batches(16));
  sgd_steps(single, loader, steps, nullptr);

  std::vector<std::vector<torch::Tensor>> results(2);
  const bool overlap = GetParam();
  const auto errors = on_ranks(2, [&](RankGroup& group) {
    auto net = fresh();
    auto shard = rank_shard(set, group);
    // buckets of 64 bytes: two here (a bucket closes once it holds 64), the first complete
    // while backward still runs
    GradientReducer reducer(net->parameters(), group, 64, overlap);
    EXPECT_GE(reducer.buckets(), 2u);
    sgd_steps(net, *shard, steps, &reducer);
    results[group.rank()] = copies(net->parameters());
  });
  ASSERT_EQ(errors, std::vector<std::string>(2));
  const auto expected = single->parameters();
  for (int r = 0; r < 2; ++r)
    for (size_t i = 0; i < expected.size(); ++i) {
      const double scale = expected[i].abs().max().item<double>();
      const double diff = (results[r][i] - expected[i]).abs().max().item<double>();
      EXPECT_LE(diff, 1e-5 * scale) << "rank " << r << " parameter " << i;
      // and the ranks agree exactly: they apply the same summed gradients
      EXPECT_TRUE(torch::equal(results[r][i], results[0][i])) << "rank " << r;
    }
  // the steps moved the weights well beyond that tolerance
  EXPECT_GT((expected[0] - init[0]).abs().max().item<double>(), 1e-3);
}

// with BatchNorm: synchronised statistics make 2 ranks compute what 1 process computes with the
// whole batch; per-rank statistics do not
TEST(DataParallel, SynchronisedBatchNormMatchesOneProcessAndPerRankDoesNot) {
  torch::set_num_threads(1);
  auto set = random_images(96, 4);
  torch::manual_seed(5);
  const auto init = copies(BnNet()->parameters());
  auto fresh = [&] { return initialised([] { return BnNet(); }, init); };
  const int steps = 6;
  auto single = fresh();
  data::BatchLoader loader(set, data::all_indices(96), augmented_batches(16));
  sgd_steps(single, loader, steps, nullptr);
  auto gap = [&](bool synchronised) {
    std::vector<std::vector<torch::Tensor>> results(2);
    const auto errors = on_ranks(2, [&](RankGroup& group) {
      auto net = fresh();
      auto shard = rank_shard(set, group);
      GradientReducer reducer(net->parameters(), group, 64, true);
      std::unique_ptr<SyncBatchNormScope> sync;
      if (synchronised) sync = std::make_unique<SyncBatchNormScope>(group);
      sgd_steps(net, *shard, steps, &reducer, [&](double w) {
        if (sync) sync->set_weight(w);
      });
      results[group.rank()] = copies(net->parameters());
      // the running statistics too, for synchronised BatchNorm
      if (synchronised) {
        EXPECT_TRUE(torch::allclose(net->bn->running_mean, single->bn->running_mean, 1e-4, 1e-6));
        EXPECT_TRUE(torch::allclose(net->bn->running_var, single->bn->running_var, 1e-4, 1e-6));
      }
    });
    EXPECT_EQ(errors, std::vector<std::string>(2));
    double worst = 0;
    const auto expected = single->parameters();
    for (int r = 0; r < 2; ++r)
      for (size_t i = 0; i < expected.size(); ++i)
        worst = std::max(worst, (results[r][i] - expected[i]).abs().max().item<double>() /
                                    expected[i].abs().max().item<double>());
    return worst;
  };
  EXPECT_LE(gap(true), 1e-5);
  EXPECT_GT(gap(false), 1e-3);  // per-rank statistics: measurably another computation
}

INSTANTIATE_TEST_SUITE_P(Overlap, DataParallelSteps, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "overlapped" : "after"; });

TEST(RankGroup, BroadcastsSumsAndChecksAgreement) {
  std::vector<std::string> seen(2);
  const auto errors = on_ranks(2, [&](RankGroup& group) {
    const float r = static_cast<float>(group.rank());
    std::vector<torch::Tensor> t{torch::full({3}, r + 1), torch::full({2}, int64_t(group.rank()))};
    group.broadcast(t);
    EXPECT_TRUE(torch::equal(t[0], torch::full({3}, 1.0f)));
    EXPECT_TRUE(torch::equal(t[1], torch::zeros({2}, torch::kInt64)));
    auto s = torch::full({4}, r + 1);
    group.allreduce_sum(s);
    EXPECT_TRUE(torch::equal(s, torch::full({4}, 3.0f)));
    EXPECT_EQ(group.share("note", group.leader() ? "from rank 0" : "ignored"), "from rank 0");
    group.require_same_value("a shared value", 42);
    group.require_same_value("the branch drawn", group.rank());  // throws on every rank
  });
  for (const auto& e : errors)
    EXPECT_NE(e.find("the branch drawn differs between ranks"), std::string::npos) << e;
}

TEST(RankGroup, DisagreeingConfigsNameTheFirstDifferingLine) {
  const auto errors = on_ranks(2, [](RankGroup& group) {
    group.require_same("config", "[data]\nroot = x\n[train]\nepochs = 3\nlr = " +
                                     std::string(group.leader() ? "0.1" : "0.2") + "\nseed = 1\n");
  });
  for (const auto& e : errors)
    EXPECT_EQ(e,
              "ranks disagree on the config: rank 1 differs from rank 0 at [train] 'lr = 0.1' vs "
              "'lr = 0.2'");
}

TEST(RankGroup, RendezvousThatNeverCompletesNamesTheMissingRank) {
  RendezvousOptions o;
  o.port = free_loopback_port();
  o.world = 3;
  o.timeout = std::chrono::seconds(1);
  try {
    RankGroup::join(o);
    FAIL() << "joined alone";
  } catch (const DistributedError& e) {
    EXPECT_NE(std::string(e.what()).find("1 of 3 ranks joined (missing: rank 1, 2)"),
              std::string::npos)
        << e.what();
  }
  o.rank = 1;  // and a rank that finds no rank 0
  try {
    RankGroup::join(o);
    FAIL() << "joined without rank 0";
  } catch (const DistributedError& e) {
    EXPECT_NE(std::string(e.what()).find("reached no rank 0"), std::string::npos) << e.what();
  }
}

TEST(RankGroup, TorchrunVariablesAreReadAndChecked) {
  ::setenv("MASTER_ADDR", "10.1.2.3", 1);
  ::setenv("MASTER_PORT", "29999", 1);
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "2", 1);
  ::setenv("LOCAL_RANK", "0", 1);
  bool found = false;
  auto o = rendezvous_from_environment({}, &found);
  EXPECT_TRUE(found);
  EXPECT_EQ(o.master_addr, "10.1.2.3");
  EXPECT_EQ(o.port, 29999);
  EXPECT_EQ(o.world, 4);
  EXPECT_EQ(o.rank, 2);
  ::setenv("RANK", "4", 1);
  try {
    rendezvous_from_environment({}, &found);
    FAIL() << "a rank outside the world was accepted";
  } catch (const DistributedError& e) {
    EXPECT_NE(std::string(e.what()).find("RANK='4'"), std::string::npos) << e.what();
  }
  for (const char* v : {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK"})
    ::unsetenv(v);
}
