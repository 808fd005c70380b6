// the MobileNetV2 multi-branch network: its branch space (width, depth, exits) and the errors
// that refuse one, the importance order as a pure permutation, every branch's forward equal to
// its materialized MobileNetV2, skipped blocks physically absent, and the checkpoint round trip
#include "supernet/mobilenetv2_supernet.h"

#include <gtest/gtest.h>

#include "branch_space_error.h"
#include "models/mobilenetv2_compression.h"
#include "models/module_state.h"
#include "trainer/training.h"

using namespace adascale;
using namespace adascale::trainer;

namespace {

MobileNetV2Spec small_base() {
  ModelConfig m;
  m.arch = "mobilenetv2";
  m.stem_width = 8;
  m.widths = {8, 12, 16};
  m.depths = {1, 2, 2};
  m.expansion = 4;
  return MobileNetV2Spec::from_config(m, 1, 5);
}

SupernetConfig small_space() {
  SupernetConfig c;
  c.widths = "1.0,0.5,0.25";
  c.ops = "conv";
  c.exits = "2";
  c.depths = "d1/2@3,d1/2@2/3";
  c.precisions = "fp32,int8";
  return c;
}

std::string error_of(const SupernetConfig& c) {
  return adascale::testing::branch_space_error(c, small_base());
}

// random weights and BN statistics in the shared network, then each branch's own statistics
std::shared_ptr<MobileNetV2Supernet> random_network(uint64_t seed) {
  torch::manual_seed(seed);
  const auto base = small_base();
  auto net = std::make_shared<MobileNetV2Supernet>(
      base, BranchSpace::from_config(small_space(), base), 12, 12);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->base().parameters()) p.normal_(0, 0.3);
  }
  net->reset_private_bn();
  const auto images = torch::randn({64, 1, 12, 12});
  for (size_t b = 0; b < net->branch_count(); ++b) {
    auto physical = net->physical(b);
    recalibrate_batchnorm(*physical, images);
    compress::StateDict stats;
    for (const auto& [name, t] : module_state(*physical))
      if (name.find("running_") != std::string::npos) stats[name] = t;
    net->set_branch_bn_stats(b, stats);
  }
  net->eval();
  return net;
}

}  // namespace

TEST(MobileNetV2Supernet, BranchSpaceSpansWidthDepthAndExits) {
  const auto net = random_network(1);
  // 3 widths x (full, two depths, one early exit)
  EXPECT_EQ(net->branch_count(), 12u);
  for (const char* name : {"w1.00", "w0.25>d1/2@2/3", "w0.50>exit@2", "w0.25>d1/2@3"})
    EXPECT_GE(net->space().find(name), 0) << name;
  EXPECT_EQ(net->branch(net->largest()).name, "w1.00");
  EXPECT_EQ(net->branch(net->smallest()).name, "w0.25>d1/2@2/3");
  // a width scales every channel count; a shallow branch leaves the skipped blocks out
  const auto& shallow = net->branch_spec(net->space().find("w0.50>d1/2@2/3"));
  EXPECT_EQ(shallow.stem, 4);
  ASSERT_EQ(shallow.stages.size(), 3u);
  EXPECT_EQ(shallow.stages[1].size(), 1u);
  EXPECT_EQ(shallow.stages[2].size(), 1u);
  EXPECT_EQ(shallow.stages[2][0].hidden, 24);  // 12 x 4 expansion, halved
  EXPECT_EQ(net->branch_spec(net->space().find("w1.00>exit@2")).stages.size(), 2u);
  EXPECT_GT(net->branch_macs(net->largest()), 8 * net->branch_macs(net->smallest()));
}

TEST(MobileNetV2Supernet, EveryBranchEqualsItsMaterializedNetwork) {
  const auto net = random_network(2);
  torch::manual_seed(7);
  const auto x = torch::randn({4, 1, 12, 12});
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < net->branch_count(); ++b) {
    const auto physical = net->physical(b);
    const double diff =
        (net->forward_branch(b, x) - physical->forward(x)).abs().max().item<double>();
    EXPECT_LT(diff, 1e-4) << net->branch(b).name;
    // the early exits of a full-depth branch, from its pass
    std::vector<torch::Tensor> exits;
    net->forward_with_exits(b, x, &exits);
    ASSERT_EQ(exits.size(), net->early_exits_of(b).size());
    for (size_t i = 0; i < exits.size(); ++i) {
      const size_t e = net->early_exits_of(b)[i];
      EXPECT_LT((exits[i] - net->physical(e)->forward(x)).abs().max().item<double>(), 1e-4)
          << net->branch(e).name;
    }
  }
}

TEST(MobileNetV2Supernet, ImportanceOrderIsAPermutation) {
  torch::manual_seed(3);
  MobileNetV2 model(small_base());
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model.parameters()) p.normal_(0, 0.3);
  }
  recalibrate_batchnorm(model, torch::randn({64, 1, 12, 12}));
  model.eval();
  const auto x = torch::randn({4, 1, 12, 12});
  const auto before = model.forward(x);
  auto state = module_state(model);
  const auto groups = mobilenetv2_channel_groups(model.spec());
  // the stem and stage 1 (residual, no stride) form one chain, stages 2 and 3 one each; 4 blocks
  // expand
  EXPECT_EQ(groups.size(), 3u + 4u);
  for (const auto& g : groups)
    compress::select_channels(state, g,
                              compress::importance_order(compress::channel_importance(
                                  g, state, compress::Importance::kFilterL1)));
  EXPECT_FALSE(state.at("stages.1.0.project.conv.weight")
                   .equal(module_state(model).at("stages.1.0.project.conv.weight")));
  load_module_state(model, state, "ordered");
  EXPECT_LT((model.forward(x) - before).abs().max().item<double>(), 1e-4);
}

TEST(MobileNetV2Supernet, SpecRoundTripsWithItsState) {
  const auto net = random_network(4);
  const auto again = multi_branch_from_spec(net->spec_json());
  ASSERT_NE(dynamic_cast<MobileNetV2Supernet*>(again.get()), nullptr);
  again->load_full_state(net->full_state(), "round trip");
  again->eval();
  const auto x = torch::randn({2, 1, 12, 12});
  torch::NoGradGuard no_grad;
  const size_t b = net->space().find("w0.50>d1/2@3");
  EXPECT_TRUE(again->forward_branch(b, x).equal(net->forward_branch(b, x)));
}

// low-rank 1x1 pairs as a branch operator: the branch is a factored MobileNetV2 whose rank scales
// with the width; at full rank, initialised from the SVD of the ordered backbone, the full-width
// branch computes what the plain one does (batch statistics: the same function before BN)
TEST(MobileNetV2Supernet, LowRankBranchesAreFactoredNetworks) {
  auto c = small_space();
  c.ops = "conv,lowrank1.0,lowrank0.5";
  c.depths = "";
  const auto base = small_base();
  torch::manual_seed(5);
  MobileNetV2Supernet net(base, BranchSpace::from_config(c, base), 12, 12);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net.base().parameters()) p.normal_(0, 0.3);
  }
  const CompressedMobileNetV2 full{base, module_state(net.base())};
  for (double f : {1.0, 0.5})
    net.load_variant(f == 1.0 ? "lowrank1.00" : "lowrank0.50",
                     lowrank_mobilenetv2(full, f, net.space().op_stages).state);
  net.reset_private_bn();
  const int half = net.space().find("w0.50>lowrank0.50@2/3");
  ASSERT_GE(half, 0);
  const auto& spec = net.branch_spec(half);
  EXPECT_EQ(spec.stages[0][0].project_rank, 0);  // stage 1 is not an op stage
  // stage 3's first block: 12 -> 48 (expansion rank 6 of the full width's 12, halved to 3)
  EXPECT_EQ(spec.stages[2][0].expand_rank, 3);
  EXPECT_LT(net.branch_macs(half), net.branch_macs(net.space().find("w0.50")));
  torch::manual_seed(9);
  const auto x = torch::randn({8, 1, 12, 12});
  torch::NoGradGuard no_grad;
  net.train();
  const auto exact = net.forward_branch(net.space().find("w1.00>lowrank1.00@2/3"), x);
  EXPECT_LT((exact - net.forward_branch(net.space().find("w1.00"), x)).abs().max().item<double>(),
            1e-3);
  net.eval();
  for (size_t b = 0; b < net.branch_count(); ++b) {
    const double diff =
        (net.forward_branch(b, x) - net.physical(b)->forward(x)).abs().max().item<double>();
    EXPECT_LT(diff, 1e-4) << net.branch(b).name;
  }
  const auto again = multi_branch_from_spec(net.spec_json());
  EXPECT_NO_THROW(again->load_full_state(net.full_state(), "round trip"));
}

TEST(MobileNetV2Supernet, ImpossibleSpacesAreRefusedByName) {
  auto c = small_space();
  c.depths = "d1/2@1";  // stage 1 has one block
  EXPECT_NE(error_of(c).find("depth 'd1/2@1' names stage 1, which has 1 block, not 2"),
            std::string::npos)
      << error_of(c);
  c = small_space();
  c.widths = "1.0,0.01";
  EXPECT_NE(error_of(c).find("width 0.01 leaves the stem (8 channels) with none"),
            std::string::npos)
      << error_of(c);
  c = small_space();
  c.exits = "4";
  EXPECT_NE(error_of(c).find("stage 4 does not exist (the network has 3 stages"), std::string::npos)
      << error_of(c);
  c = small_space();
  // a space read from a file is bounded before any branch is built
  EXPECT_NE(
      [&] {
        try {
          BranchSpace::from_lists({1.0}, {parse_operator("conv", "t")}, {0}, {2}, {"fp32"},
                                  "linear", small_base(), std::vector<std::string>(5000, "d1/2@2"));
        } catch (const ConfigError& e) {
          return std::string(e.what());
        }
        return std::string();
      }()
          .find("lists 5000 depths, more than a space of 4096 branches holds"),
      std::string::npos);
  c = small_space();
  c.ops = "conv,dpconv";
  EXPECT_NE(error_of(c).find("'dpconv' does not apply to a mobilenetv2"), std::string::npos)
      << error_of(c);
  c = small_space();
  c.exit_head = "block";
  EXPECT_NE(error_of(c).find("a mobilenetv2 branch space has linear exit heads only"),
            std::string::npos)
      << error_of(c);
}
