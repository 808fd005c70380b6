// the multi-branch network: branch space parsing and errors, importance order as a pure
// permutation, every branch's forward equal to its materialized physical ResNet, weight sharing
// (gradients of a narrow branch touch only the leading channels), checkpoint round trip, and a
// short end-to-end run on a slice of Fashion-MNIST
#include "supernet/supernet.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "branch_space_error.h"
#include "fmnist_slice.h"
#include "resnet_fixture.h"
#include "supernet/model_loading.h"
#include "supernet/student_draw.h"
#include "supernet/supernet_training.h"
#include "trainer/checkpoint.h"

namespace fs = std::filesystem;
using namespace adascale;
using namespace adascale::trainer;

namespace {

ResNetSpec small_base() {
  ModelConfig m;
  m.stem_width = 8;
  m.widths = {8, 16, 24};
  m.depths = {1, 2, 1};
  return ResNetSpec::from_config(m, 1, 5);
}

SupernetConfig small_space() {
  SupernetConfig c;
  c.widths = "1.0,0.5,0.25";
  c.ops = "conv,dpconv,fire,lowrank0.5";
  c.op_stages = "2,3";
  c.exits = "2";
  c.depths = "d1/2@2";  // stage 2 runs one of its two blocks
  return c;
}

int64_t numel(const compress::StateDict& state) {
  int64_t n = 0;
  for (const auto& [name, t] : state) n += t.numel();
  return n;
}

std::string error_of(const SupernetConfig& c) {
  return adascale::testing::branch_space_error(c, small_base());
}

// the summed absolute gradient of a named parameter (0 without one); a missing name fails
double abs_grad_sum(const torch::OrderedDict<std::string, torch::Tensor>& params,
                    const std::string& name) {
  const auto* p = params.find(name);
  EXPECT_TRUE(p != nullptr) << name;
  return p && p->grad().defined() ? p->grad().abs().sum().item<double>() : 0.0;
}

// a supernet with random weights and per-branch BN statistics from random images
std::shared_ptr<Supernet> random_supernet(uint64_t seed, const std::string& exit_head = "linear") {
  torch::manual_seed(seed);  // the variants' and exit heads' initial weights too
  auto base = small_base();
  auto space = small_space();
  space.exit_head = exit_head;
  auto net = std::make_shared<Supernet>(base, BranchSpace::from_config(space, base), 12, 12);
  const auto init = adascale::testing::random_resnet(seed, 8, {8, 16, 24}, {1, 2, 1}, 5);
  load_module_state(net->base(), init.state, "fixture");
  net->reset_private_bn();
  net->reset_exit_blocks();
  torch::manual_seed(seed);
  const auto images = torch::randn({64, 1, 12, 12});
  for (size_t b = 0; b < net->branch_count(); ++b) {
    auto m = net->materialize(b);
    ResNet physical(ResNetSpec::from_json(m.spec_json));
    load_module_state(physical, m.state, "branch");
    recalibrate_batchnorm(physical, images);
    compress::StateDict stats;
    for (const auto& [name, t] : module_state(physical))
      if (name.find("running_") != std::string::npos) stats[name] = t;
    net->set_branch_bn_stats(b, stats);
  }
  net->eval();
  return net;
}

// x is y cut to x's shape, each dimension to its leading entries or, with fire, possibly to
// a fire's output order (the leading entries of each half)
bool is_cut_of(const torch::Tensor& x, const torch::Tensor& y, bool fire, int64_t d = 0) {
  if (x.dim() != y.dim()) return false;
  if (d == y.dim()) return x.equal(y);
  if (y.size(d) == x.size(d)) return is_cut_of(x, y, fire, d + 1);
  if (y.size(d) < x.size(d)) return false;
  if (is_cut_of(x, y.narrow(d, 0, x.size(d)), fire, d + 1)) return true;
  if (!fire) return false;
  const int64_t n = x.size(d), half = y.size(d) / 2;
  const auto index = torch::cat({torch::arange(n / 2), torch::arange(half, half + n - n / 2)});
  return is_cut_of(x, y.index_select(d, index), fire, d + 1);
}

}  // namespace

TEST(BranchSpace, CartesianProductWithCanonicalNames) {
  const auto sp = BranchSpace::from_config(small_space(), small_base());
  // 3 widths x (conv, dpconv, fire and lowrank, each at exits 2 and 3, and at depth d1/2@2)
  EXPECT_EQ(sp.branches.size(), 3u * 4u * 3u);
  EXPECT_GE(sp.find("w1.00"), 0);
  EXPECT_GE(sp.find("w1.00>d1/2@2"), 0);
  EXPECT_GE(sp.find("w0.50>dpconv@2/3>d1/2@2"), 0);
  EXPECT_EQ(sp.find("w1.00>d1/2@2>exit@2"), -1);  // early exits keep full depth
  EXPECT_GE(sp.find("w0.25>dpconv@2/3>exit@2"), 0);
  EXPECT_GE(sp.find("w0.50>lowrank0.50@2/3"), 0);
  EXPECT_GE(sp.find("w0.25>fire@2/3>exit@2"), 0);
  EXPECT_EQ(sp.find("w0.75"), -1);
  // an op whose stages all follow the exit adds no branch
  SupernetConfig c = small_space();
  c.op_stages = "3";
  EXPECT_EQ(BranchSpace::from_config(c, small_base()).branches.size(), 3u * (3u + 3u * 2u));
}

TEST(BranchSpace, ShippedConfigHasSixteenBranchesOverEightTimesTheMacs) {
  auto c = load_config_file(std::string(ADASCALE_SOURCE_DIR) + "/configs/fmnist_supernet.ini");
  c.validate();
  const auto base = ResNetSpec::from_config(c.model, 1, 10);
  const Supernet net(base, BranchSpace::from_config(c.supernet, base), 28, 28);
  EXPECT_EQ(net.branch_count(), 16u);
  EXPECT_EQ(net.space().deployable().size(), 32u);  // each also as an int8 twin
  EXPECT_GE(net.branch_macs(net.largest()), 8 * net.branch_macs(net.smallest()));
}

TEST(BranchSpace, BadSpacesAreNamedBeforeTraining) {
  auto with = [](auto edit) {
    SupernetConfig c = small_space();
    edit(c);
    return error_of(c);
  };
  EXPECT_NE(with([](auto& c) { c.ops = "conv,winograd"; }).find("unknown operator 'winograd'"),
            std::string::npos);
  EXPECT_NE(with([](auto& c) { c.widths = "1.0,0.01"; }).find("width 0.01 leaves"),
            std::string::npos);
  EXPECT_NE(with([](auto& c) { c.widths = "1.5"; }).find("not in (0, 1]"), std::string::npos);
  EXPECT_NE(with([](auto& c) { c.widths = "0.5,0.50"; }).find("listed twice"), std::string::npos);
  EXPECT_NE(with([](auto& c) { c.exits = "5"; }).find("stage 5 does not exist"), std::string::npos);
  EXPECT_NE(with([](auto& c) { c.op_stages = "0"; }).find("supernet.op_stages"), std::string::npos);
  EXPECT_NE(with([](auto& c) { c.ops = "lowrank1.5"; }).find("rank fraction"), std::string::npos);
  // a fire slot needs a channel for each of its two expands at every width
  EXPECT_NE(with([](auto& c) { c.widths = "1.0,0.08"; }).find("fire needs 2 output channels"),
            std::string::npos);
  EXPECT_NE(with([](auto& c) { c.widths = "1.0,x"; }).find("'x' is not a number"),
            std::string::npos);
  EXPECT_NE(with([](auto& c) { c.precisions = "fp32,int4"; }).find("unknown precision 'int4'"),
            std::string::npos);
  EXPECT_NE(with([](auto& c) { c.precisions = "int8,int8"; }).find("listed twice"),
            std::string::npos);
  EXPECT_NE(with([](auto& c) { c.exit_head = "conv"; }).find("supernet.exit_head"),
            std::string::npos);
  // elastic depth: the first K of a stage's N blocks, K in [1, N), N the stage's own
  EXPECT_NE(with([](auto& c) { c.depths = "d2/2@2"; }).find("is not shallower"), std::string::npos);
  EXPECT_NE(with([](auto& c) { c.depths = "d0/2@2"; }).find("keeps no block"), std::string::npos);
  EXPECT_NE(with([](auto& c) { c.depths = "d1/2@3"; }).find("stage 3, which has 1 block, not 2"),
            std::string::npos);
  EXPECT_NE(with([](auto& c) { c.depths = "d1/2@4"; }).find("stage 4, which does not exist"),
            std::string::npos);
  EXPECT_NE(with([](auto& c) { c.depths = "d1/2@2/2"; }).find("names stage 2 twice"),
            std::string::npos);
  for (const char* bad : {"1/2@2", "d1/2", "d1@2", "dx/2@2", "d1/2@", "d1/2@2/x", "d-1/2@2"})
    EXPECT_NE(with([&](auto& c) { c.depths = bad; }).find("is not dK/N@S"), std::string::npos)
        << bad;
  EXPECT_NE(with([](auto& c) { c.depths = "d1/2@2,d1/2@2"; }).find("listed twice"),
            std::string::npos);
  {  // a next stage narrower than the exit leaves an exit block nothing to start from
    SupernetConfig c = small_space();
    c.exit_head = "block";
    ResNetSpec narrow = small_base();
    narrow.stages[2][0].out = narrow.stages[2][0].mid = 8;
    try {
      BranchSpace::from_config(c, narrow);
      ADD_FAILURE() << "an exit block wider than the next stage was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("exit block after stage 2"), std::string::npos)
          << e.what();
    }
  }
}

// a fraction with more decimals than a name shows trains with the fraction the name says, so the
// spec a checkpoint stores rebuilds the same ranks
TEST(BranchSpace, LowRankFractionIsTheOneItsNameSays) {
  SupernetConfig c = small_space();
  c.ops = "conv,lowrank:0.3449";  // 0.3449 x 48 rounds to 17, 0.34 x 48 to 16
  const auto base = small_base();
  torch::manual_seed(3);
  Supernet net(base, BranchSpace::from_config(c, base), 28, 28);
  EXPECT_GE(net.space().find("w1.00>lowrank0.34@2/3"), 0);
  const auto again = multi_branch_from_spec(net.spec_json());
  EXPECT_NO_THROW(again->load_full_state(net.full_state(), "round trip"));
}

TEST(BranchSpace, Int8TwinsAreDeployableNotTrained) {
  SupernetConfig c = small_space();
  c.precisions = "fp32,int8";
  const auto sp = BranchSpace::from_config(c, small_base());
  EXPECT_EQ(sp.branches.size(), 3u * 4u * 3u);  // trained: fp32 only
  const auto all = sp.deployable();
  ASSERT_EQ(all.size(), 2 * sp.branches.size());
  BranchRef ref;
  ASSERT_TRUE(sp.resolve("w0.25>dpconv@2/3>exit@2>int8", &ref));
  EXPECT_TRUE(ref.int8);
  EXPECT_EQ(sp.branches[ref.branch].name, "w0.25>dpconv@2/3>exit@2");
  EXPECT_FALSE(sp.resolve("w0.25>int8>int8", &ref));
  EXPECT_FALSE(sp.resolve("w0.33", &ref));
  // asked-for precisions override the space's; an int8 twin resolves even in an fp32-only space
  const auto int8_only = sp.deployable({"int8"});
  ASSERT_EQ(int8_only.size(), sp.branches.size());
  EXPECT_TRUE(int8_only.front().int8);
  c.precisions = "fp32";
  const auto fp32_space = BranchSpace::from_config(c, small_base());
  EXPECT_EQ(fp32_space.deployable().size(), fp32_space.branches.size());
  ASSERT_TRUE(fp32_space.resolve(fp32_space.branches[1].name + ">int8", &ref));
  EXPECT_EQ(ref.branch, 1u);
  EXPECT_TRUE(ref.int8);
  // the precisions travel with the checkpoint's spec
  auto base = small_base();
  const Supernet net(base, sp, 12, 12);
  EXPECT_EQ(multi_branch_from_spec(net.spec_json())->space().precisions,
            (std::vector<std::string>{"fp32", "int8"}));
}

TEST(Supernet, NamesTheSharedBackbonesBlocksAndSlots) {
  const auto base = small_base();
  const Supernet net(base, BranchSpace::from_config(small_space(), base), 28, 28);
  const auto stages = net.stages();
  ASSERT_EQ(stages.size(), base.stages.size());
  EXPECT_EQ(stages[1][1].conv_slots.back(), "base.stages.1.1.conv2");
  for (const auto& stage : stages)
    for (const auto& block : stage)
      for (const auto& slot : block.conv_slots) EXPECT_NO_THROW(net.module_named(slot)) << slot;
}

TEST(Supernet, ShallowBranchesLeaveTheSkippedBlocksOut) {
  auto net = random_supernet(4);
  const int full = net->space().find("w0.50>dpconv@2/3");
  const int shallow = net->space().find("w0.50>dpconv@2/3>d1/2@2");
  ASSERT_GE(full, 0);
  ASSERT_GE(shallow, 0);
  const auto m = net->materialize(shallow), f = net->materialize(full);
  ASSERT_EQ(ResNetSpec::from_json(m.spec_json).stages.size(), 3u);
  // physically absent, not bypassed
  EXPECT_EQ(ResNetSpec::from_json(m.spec_json).stages[1].size(), 1u);
  EXPECT_EQ(ResNetSpec::from_json(f.spec_json).stages[1].size(), 2u);
  for (const auto& [name, t] : m.state) EXPECT_EQ(name.find("stages.1.1."), std::string::npos);
  EXPECT_LT(numel(m.state), numel(f.state));
  EXPECT_LT(net->branch_macs(shallow), net->branch_macs(full));
  // the kept blocks' weights are the full-depth branch's; BN statistics are the branch's own
  // (stage 3 sees another input)
  EXPECT_TRUE(
      m.state.at("stages.1.0.conv1.dw.weight").equal(f.state.at("stages.1.0.conv1.dw.weight")));
  EXPECT_FALSE(
      m.state.at("stages.2.0.bn1.running_mean").equal(f.state.at("stages.2.0.bn1.running_mean")));
  // the smallest branch of the sandwich is the narrowest shallow one
  EXPECT_EQ(net->branch(net->smallest()).depth.name(), "d1/2@2");
  // the depth travels with the checkpoint's spec
  const auto again = multi_branch_from_spec(net->spec_json());
  EXPECT_EQ(again->space().find("w0.50>dpconv@2/3>d1/2@2"), shallow);
}

// progressive depth: the first half of the joint epochs (rounded down) draws full-depth branches
// only; the sandwich draws every branch from the first step; a step draws the same branches
// whenever it runs (a resumed run)
TEST(Supernet, ProgressiveDepthDrawsFullDepthFirst) {
  const auto net = random_supernet(5);
  TrainConfig c;
  c.supernet.sampled = 3;
  c.supernet.depth_order = "progressive";
  const int every = net->space().find("w0.50>d1/2@2");  // shallow, named in every_step
  ASSERT_GE(every, 0);
  auto shallow = [&](size_t b) { return !net->branch(b).depth.full(); };
  for (int64_t epochs : {1, 3, 4}) {
    c.supernet.joint_epochs = epochs;
    const supernet_detail::StudentDraw draw(*net, c, {static_cast<size_t>(every)});
    for (int64_t epoch = 0; epoch < epochs; ++epoch) {
      const bool full_only = 2 * (epoch + 1) <= epochs;  // 0 of 1, 1 of 3, 2 of 4
      EXPECT_EQ(draw.full_depth_only(epoch), full_only) << epochs << " " << epoch;
      bool any_shallow = false;
      for (int64_t step = 0; step < 20; ++step) {
        const auto students = draw.students(epoch, epoch * 100 + step);
        EXPECT_EQ(students, draw.students(epoch, epoch * 100 + step));
        std::set<size_t> unique(students.begin(), students.end());
        EXPECT_EQ(unique.size(), students.size());  // no branch twice
        EXPECT_EQ(unique.count(net->largest()), 0u);
        for (size_t b : students) {
          EXPECT_FALSE(net->is_early_exit(b));
          any_shallow = any_shallow || shallow(b);
        }
        EXPECT_EQ(std::count(students.begin(), students.end(), net->smallest()), full_only ? 0 : 1);
      }
      EXPECT_EQ(any_shallow, !full_only) << epochs << " " << epoch;
    }
  }
  // the sandwich order: the shallowest narrowest branch from the first step
  c.supernet.depth_order = "sandwich";
  const supernet_detail::StudentDraw sandwich(*net, c, {});
  EXPECT_FALSE(sandwich.full_depth_only(0));
  EXPECT_EQ(sandwich.students(0, 0).front(), net->smallest());
}

// a space without depths names and orders its branches as before depths existed: checkpoints
// store per-branch BN statistics by branch index
TEST(BranchSpace, WithoutDepthsTheOrderIsUnchanged) {
  SupernetConfig c = small_space();
  c.depths = "";
  c.widths = "1.0,0.5";
  c.ops = "conv,dpconv";
  const auto sp = BranchSpace::from_config(c, small_base());
  std::vector<std::string> names;
  for (const auto& b : sp.branches) names.push_back(b.name);
  EXPECT_EQ(names, (std::vector<std::string>{"w1.00>exit@2", "w1.00", "w1.00>dpconv@2/3>exit@2",
                                             "w1.00>dpconv@2/3", "w0.50>exit@2", "w0.50",
                                             "w0.50>dpconv@2/3>exit@2", "w0.50>dpconv@2/3"}));
}

TEST(Supernet, ImportanceOrderIsAPurePermutation) {
  auto model = adascale::testing::random_resnet(3, 8, {8, 16, 24}, {1, 2, 1}, 5);
  ResNet before(model.spec);
  load_module_state(before, model.state, "before");
  before.eval();
  for (const auto& group : resnet_channel_groups(model.spec))
    compress::select_channels(model.state, group,
                              compress::importance_order(compress::channel_importance(
                                  group, model.state, compress::Importance::kFilterL1)));
  ResNet after(model.spec);
  load_module_state(after, model.state, "after");
  after.eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({4, 1, 12, 12});
  const auto y = before.forward(x);
  // permuted channels are summed in another order
  EXPECT_LT((y - after.forward(x)).abs().max().item<double>(),
            1e-5 * std::max(1.0, y.abs().max().item<double>()));
}

class SupernetHeads : public ::testing::TestWithParam<std::string> {};

TEST_P(SupernetHeads, EveryBranchEqualsItsMaterializedResNet) {
  auto net = random_supernet(5, GetParam());
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({3, 1, 12, 12});
  for (size_t b = 0; b < net->branch_count(); ++b) {
    const auto m = net->materialize(b);
    ResNet physical(ResNetSpec::from_json(m.spec_json));
    load_module_state(physical, m.state, "branch");
    physical.eval();
    const double diff =
        (net->forward_branch(b, x) - physical.forward(x)).abs().max().item<double>();
    EXPECT_LT(diff, 1e-4) << net->branch(b).name;
    // physically smaller: fewer parameters for every branch narrower than the backbone
    if (net->branch(b).width < 1.0)
      EXPECT_LT(numel(m.state), numel(net->materialize(net->space().find("w1.00")).state))
          << net->branch(b).name;
  }
  EXPECT_GT(net->branch_macs(net->largest()), 8 * net->branch_macs(net->smallest()));
  // the full-width plain branch is the backbone itself
  const auto full = net->materialize(net->space().find("w1.00"));
  const auto base = module_state(net->base());
  EXPECT_TRUE(full.state.at("stages.1.1.conv2.weight").equal(base.at("stages.1.1.conv2.weight")));
}

INSTANTIATE_TEST_SUITE_P(ExitHeads, SupernetHeads, ::testing::Values("linear", "block"));

TEST(Supernet, ExitBlockIsOneMoreStageStartedFromTheNextStage) {
  auto net = random_supernet(17, "block");
  int exits = 0;
  for (size_t t = 0; t < net->branch_count(); ++t)
    for (size_t e : net->early_exits_of(t)) {
      ++exits;
      const auto& exit = net->branch(e);
      const auto& spec = net->branch_spec(e);
      const auto& trunk = net->branch_spec(t);
      // stages up to the exit, then one block at the exit's channel count, half of it inside
      ASSERT_EQ(spec.stages.size(), static_cast<size_t>(exit.exit_stage) + 2) << exit.name;
      const auto& blk = spec.stages.back();
      ASSERT_EQ(blk.size(), 1u);
      const int64_t c = spec.stages[exit.exit_stage].back().out;
      EXPECT_TRUE(blk[0].in == c && blk[0].mid == std::max<int64_t>(1, std::lround(c * 0.5)) &&
                  blk[0].out == c)
          << exit.name;
      const auto& next = trunk.stages[exit.exit_stage + 1][0];
      EXPECT_EQ(blk[0].stride, next.stride);
      EXPECT_EQ(blk[0].conv1.kind, next.conv1.kind) << exit.name;  // the branch's operator
      EXPECT_EQ(blk[0].conv2.kind, next.conv2.kind) << exit.name;
      if (exit.op.kind ==
          OperatorKind::kLowRank) {  // the op's rank fraction (0.5) of the block's own channels
        EXPECT_EQ(blk[0].conv1.rank, std::lround(0.5 * 3 * std::min(blk[0].in, blk[0].mid)));
        EXPECT_EQ(blk[0].conv2.rank, std::lround(0.5 * 3 * std::min(blk[0].mid, blk[0].out)));
      }
      // started from the leading channels of the full-depth branch's next block and classifier
      // (a fire branch's in fire order where a dimension runs over a fire's output)
      const auto mine = net->materialize(e).state, theirs = net->materialize(t).state;
      const std::string p = "stages." + std::to_string(exit.exit_stage + 1) + ".0.";
      int compared = 0;
      for (const auto& [name, x] : mine) {
        if (name.find("running_") != std::string::npos ||
            name.find("num_batches") != std::string::npos ||
            (name.rfind(p, 0) != 0 && name.rfind("fc.", 0) != 0))
          continue;
        EXPECT_TRUE(is_cut_of(x, theirs.at(name), exit.op.kind == OperatorKind::kFire))
            << exit.name << " " << name;
        ++compared;
      }
      EXPECT_GE(compared, 6) << exit.name;
    }
  EXPECT_EQ(exits, 12);
  // the exits of one operator share their block's weights (narrower ones use the leading
  // channels) and keep their BN scales and classifiers private
  const int wide = net->space().find("w1.00>exit@2"), narrow = net->space().find("w0.50>exit@2");
  ASSERT_TRUE(wide >= 0 && narrow >= 0);
  const auto params = net->named_parameters();
  const std::string owner = "exit" + std::to_string(wide) + "_stages_2_0_";
  {
    torch::NoGradGuard no_grad;
    params[owner + "conv1_weight"].add_(1.0);
    params[owner + "bn1_weight"].add_(1.0);
  }
  const auto a = net->materialize(wide).state, n = net->materialize(narrow).state;
  const auto& w = n.at("stages.2.0.conv1.weight");
  EXPECT_TRUE(
      w.equal(a.at("stages.2.0.conv1.weight").narrow(0, 0, w.size(0)).narrow(1, 0, w.size(1))));
  const auto& g = n.at("stages.2.0.bn1.weight");
  EXPECT_FALSE(g.equal(a.at("stages.2.0.bn1.weight").narrow(0, 0, g.size(0))));
  EXPECT_NE(params.find("exit" + std::to_string(narrow) + "_fc_weight"), nullptr);
}

TEST(Supernet, EveryBranchUsesItsOwnBnStatistics) {
  auto net = random_supernet(11);
  for (size_t b = 0; b < net->branch_count(); ++b) {
    compress::StateDict stats;
    for (const auto& [name, t] : net->materialize(b).state)
      if (name.find("running_") != std::string::npos)
        stats[name] = torch::full_like(t, static_cast<double>(b + 2));
    net->set_branch_bn_stats(b, stats);
    for (const auto& [name, t] : net->materialize(b).state)
      if (name.find("running_") != std::string::npos)
        EXPECT_TRUE(t.equal(stats.at(name))) << net->branch(b).name << " " << name;
  }
}

TEST(Supernet, ExitHeadsAreFittedToTheLargestBranch) {
  auto net = random_supernet(13);
  torch::manual_seed(13);
  const auto images = torch::randn({256, 1, 12, 12});
  torch::NoGradGuard no_grad;
  const auto target = net->forward_branch(net->largest(), images);
  std::vector<double> before;
  auto error = [&](size_t b) {
    return (net->forward_branch(b, images) - target).pow(2).mean().item<double>();
  };
  for (size_t b = 0; b < net->branch_count(); ++b) before.push_back(error(b));
  net->fit_exit_heads(images);
  int exits = 0;
  for (size_t b = 0; b < net->branch_count(); ++b) {
    if (!net->is_early_exit(b)) {
      EXPECT_EQ(error(b), before[b]) << net->branch(b).name;  // untouched
      continue;
    }
    ++exits;
    EXPECT_LT(error(b), 0.5 * before[b]) << net->branch(b).name;
  }
  EXPECT_EQ(exits, 12);  // 3 widths x 4 ops, exit after stage 2

  // with labels, the head is then trained on them (and the largest's soft answers): the label
  // loss falls below the ridge fit's, and full-depth branches still do not move
  const auto labels = torch::randint(0, 5, {256});
  auto label_loss = [&](size_t b) {
    return torch::nll_loss(torch::log_softmax(net->forward_branch(b, images), 1), labels)
        .item<double>();
  };
  std::vector<double> ridge;
  for (size_t b = 0; b < net->branch_count(); ++b) ridge.push_back(label_loss(b));
  net->fit_exit_heads(images, labels, 0.5, 200);
  for (size_t b = 0; b < net->branch_count(); ++b)
    if (net->is_early_exit(b))
      EXPECT_LT(label_loss(b), ridge[b]) << net->branch(b).name;
    else
      EXPECT_EQ(label_loss(b), ridge[b]) << net->branch(b).name;
}

TEST(Supernet, NarrowBranchTrainsOnlyLeadingChannels) {
  auto net = random_supernet(7);
  net->train();
  const int b = net->space().find("w0.50");
  ASSERT_GE(b, 0);
  net->forward_branch(b, torch::randn({4, 1, 12, 12})).sum().backward();
  const auto grad = net->base().named_parameters()["stages.2.0.conv2.weight"].grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_GT(grad.slice(0, 0, 12).slice(1, 0, 12).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(grad.slice(0, 12).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(grad.slice(1, 12).abs().sum().item<double>(), 0.0);
}

TEST(Supernet, NarrowFireBranchTrainsItsFireOrderedChannels) {
  // a fire's output is its 1x1 expand's channels, then its 3x3 expand's; at width 0.5 the branch
  // keeps the leading half of each, and the layers around it select the same channels
  auto net = random_supernet(7);
  net->train();
  const int b = net->space().find("w0.50>fire@2/3");
  ASSERT_GE(b, 0);
  const auto x = torch::randn({4, 1, 12, 12});
  net->forward_branch(b, x).sum().backward();
  // stage 3's projection shortcut: 24 -> 12 output channels, 16 -> 8 input channels
  const auto grad = net->base().named_parameters()["stages.2.0.shortcut.conv.weight"].grad();
  ASSERT_TRUE(grad.defined());
  auto mask = torch::zeros({24, 16, 1, 1});
  for (int64_t r : {0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17})
    for (int64_t c : {0, 1, 2, 3, 8, 9, 10, 11}) mask[r][c] = 1;
  EXPECT_EQ((grad * (1 - mask)).abs().sum().item<double>(), 0.0);  // nothing outside them
  // and inside them exactly what the branch's physical network computes for its own weight (a
  // count of non-zeros would not do: a channel that no ReLU passes has a legitimately zero row)
  const auto rows = torch::tensor({0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17}, torch::kLong);
  const auto cols = torch::tensor({0, 1, 2, 3, 8, 9, 10, 11}, torch::kLong);
  const auto m = net->materialize(b);
  ResNet physical(ResNetSpec::from_json(m.spec_json));
  load_module_state(physical, m.state, "branch");
  physical.train();
  physical.forward(x).sum().backward();
  const auto expected = physical.named_parameters()["stages.2.0.shortcut.conv.weight"].grad();
  ASSERT_TRUE(expected.defined());
  const auto cut = grad.index_select(0, rows).index_select(1, cols);
  ASSERT_EQ(cut.sizes(), expected.sizes());
  EXPECT_LT((cut - expected).abs().max().item<double>(),
            1e-4 * (1.0 + expected.abs().max().item<double>()));
}

TEST_P(SupernetHeads, CheckpointRoundTrip) {
  auto net = random_supernet(9, GetParam());
  const auto dir = fs::temp_directory_path() / ("adascale_supernet_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  Checkpoint ck;
  ck.config_ini = TrainConfig{}.to_ini();
  ck.architecture = net->describe();
  ck.spec = net->spec_json();
  ck.input_shape = {1, 12, 12};
  ck.class_names = {"a", "b", "c", "d", "e"};
  ck.normalize_mean = {0.f};
  ck.normalize_std = {1.f};
  ck.tensors = net->full_state();
  write_checkpoint(ck, (dir / "c.h5").string());
  auto loaded = std::dynamic_pointer_cast<Supernet>(
      load_model(read_checkpoint((dir / "c.h5").string()), "c.h5"));
  fs::remove_all(dir);
  ASSERT_TRUE(loaded);
  ASSERT_EQ(loaded->branch_count(), net->branch_count());
  EXPECT_EQ(loaded->space().exit_head, GetParam());
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 1, 12, 12});
  for (size_t b = 0; b < net->branch_count(); ++b)
    EXPECT_TRUE(loaded->forward_branch(b, x).equal(net->forward_branch(b, x)))
        << net->branch(b).name;
}

TEST(Supernet, EarlyExitsComeFromTheSamePass) {
  auto net = random_supernet(9);
  const auto x = torch::randn({4, 1, 12, 12});
  size_t checked = 0;
  for (size_t b = 0; b < net->branch_count(); ++b) {
    if (net->is_early_exit(b)) {
      EXPECT_TRUE(net->early_exits_of(b).empty());
      continue;
    }
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> exits;
    const auto logits = net->forward_with_exits(b, x, &exits);
    EXPECT_LT((logits - net->forward_branch(b, x)).abs().max().item<double>(), 1e-5);
    ASSERT_EQ(exits.size(), net->early_exits_of(b).size()) << net->branch(b).name;
    for (size_t i = 0; i < exits.size(); ++i) {
      const size_t e = net->early_exits_of(b)[i];
      const auto& exit = net->branch(e);
      const auto& full = net->branch(b);
      EXPECT_TRUE(exit.width == full.width && exit.op.same_variant(full.op)) << exit.name;
      EXPECT_LT((exits[i] - net->forward_branch(e, x)).abs().max().item<double>(), 1e-5)
          << exit.name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, net->branch_count() / 3);  // one exit per full-depth branch here
  // in training, an exit's loss reaches its head and the shared trunk
  net->train();
  const size_t b = net->largest();
  std::vector<torch::Tensor> exits;
  net->forward_with_exits(b, x, &exits);
  ASSERT_EQ(exits.size(), 1u);
  net->zero_grad();
  exits[0].square().sum().backward();
  const auto params = net->named_parameters();
  auto grad_sum = [&](const std::string& name) { return abs_grad_sum(params, name); };
  EXPECT_GT(grad_sum("base.stem.conv.weight"), 0);
  EXPECT_GT(grad_sum("exit_head" + std::to_string(net->early_exits_of(b)[0]) + ".weight"), 0);
  EXPECT_EQ(grad_sum("base.fc.weight"), 0);  // the last stage's classifier is not on its path
}

TEST(Supernet, DetachedExitBlocksLearnAloneFromTheSamePass) {
  auto net = random_supernet(19, "block");
  const auto x = torch::randn({4, 1, 12, 12});
  const size_t b = net->largest();
  ASSERT_EQ(net->early_exits_of(b).size(), 1u);
  const size_t e = net->early_exits_of(b)[0];
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> exits;
    net->forward_with_exits(b, x, &exits, true);
    EXPECT_LT((exits[0] - net->forward_branch(e, x)).abs().max().item<double>(), 1e-5);
  }
  const auto params = net->named_parameters();
  auto grad_sum = [&](const std::string& name) { return abs_grad_sum(params, name); };
  const std::string block = "exit" + std::to_string(e) + "_stages_2_0_bn1_weight";
  const std::string fc = "exit" + std::to_string(e) + "_fc_weight";
  net->train();
  for (bool detach : {true, false}) {
    std::vector<torch::Tensor> exits;
    net->zero_grad();
    net->forward_with_exits(b, x, &exits, detach);
    exits[0].square().sum().backward();
    EXPECT_GT(grad_sum(block), 0) << detach;
    EXPECT_GT(grad_sum(fc), 0) << detach;
    EXPECT_EQ(grad_sum("base.fc.weight"), 0);
    if (detach) {
      // nothing but the exit's own block and classifier moves, the trunk's same-named next
      // stage included
      const std::string own = "exit" + std::to_string(e) + "_";
      for (const auto& p : params)
        if (p.key().rfind(own, 0) != 0 && p.value().grad().defined())
          EXPECT_EQ(p.value().grad().abs().sum().item<double>(), 0) << p.key();
    } else {
      EXPECT_GT(grad_sum("base.stem.conv.weight"), 0);
    }
  }
}

// the students' half of a joint step adds the same gradients as one backward() per student on
// the same accumulated gradients, whether the students run one after another or concurrently
TEST(Supernet, ConcurrentStudentsAddTheSameGradients) {
  auto net = random_supernet(23, "block");
  net->train();
  const auto x = torch::randn({8, 1, 12, 12});
  const auto labels = torch::randint(0, 5, {8});
  // three students on overlapping rows, one of them an exit's trunk (its exit trains with it)
  const std::vector<StudentPass> students{
      {net->smallest(), 0, 8}, {1, 2, 4}, {net->largest(), 4, 4}};
  StudentLoss loss = [&](const torch::Tensor& out, const std::vector<torch::Tensor>& exits,
                         int64_t start, int64_t rows) {
    auto l = torch::nn::functional::cross_entropy(out, labels.slice(0, start, start + rows));
    for (const auto& e : exits) l = l + 0.5 * e.square().mean();
    return l;
  };
  const auto params = net->parameters();
  auto gradients = [&](int threads) {
    net->zero_grad();
    net->forward_branch(net->largest(), x).sum().backward();  // the teacher's, already there
    if (threads == 0) {  // the reference: backward() per student
      for (const auto& s : students) {
        std::vector<torch::Tensor> exits;
        const auto rows = x.slice(0, s.start, s.start + s.rows);
        auto logits = net->forward_with_exits(s.branch, rows, &exits, true);
        loss(logits, exits, s.start, s.rows).backward();
      }
    } else {
      student_backward(*net, x, students, loss, true, true, threads);
    }
    std::vector<torch::Tensor> g;
    for (const auto& p : params)
      g.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    return g;
  };
  const int threads_before = torch::get_num_threads();
  const auto reference = gradients(0), one = gradients(1), two = gradients(2);
  EXPECT_EQ(torch::get_num_threads(), threads_before);  // the caller's intra-op threads restored
  double moved = 0;
  for (size_t k = 0; k < params.size(); ++k) {
    // one intra-op thread per student against the caller's threads: summation orders differ
    const double scale = 1e-4 * (1e-3 + reference[k].abs().max().item<double>());
    EXPECT_LE((one[k] - reference[k]).abs().max().item<double>(), scale) << k;
    EXPECT_LE((two[k] - reference[k]).abs().max().item<double>(), scale) << k;
    moved += two[k].abs().sum().item<double>();
  }
  EXPECT_GT(moved, 0);
  // repeatable: concurrent students sum in a fixed order
  const auto again = gradients(2);
  for (size_t k = 0; k < params.size(); ++k) EXPECT_TRUE(torch::equal(again[k], two[k])) << k;
}

TEST(Supernet, FashionMnistEndToEnd) {
  if (!adascale::testing::has_fashion_mnist()) GTEST_SKIP() << "no Fashion-MNIST";
  const auto dir =
      fs::temp_directory_path() / ("adascale_supernet_e2e_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  TrainConfig c = adascale::testing::fashion_mnist_slice(1200, 300, dir / "out");
  c.model.widths = {8, 16};
  c.train.batch_size = 32;
  c.supernet.widths = "1.0,0.5";
  c.supernet.ops = "conv,dpconv,fire";  // both substitutions distilled from the warm-up's convs
  c.supernet.exits = "1";
  c.supernet.joint_epochs = 1;
  c.supernet.student_batch = 0.5;   // students on half of each batch of 32
  c.supernet.every_step = "w0.50";  // with the smallest in every step, and 1 sampled
  c.supernet.sampled = 1;
  c.supernet.exit_head = "block";   // exit blocks trained on the same passes' features
  c.supernet.student_weight = 0.5;  // the students' losses at half the largest's
  c.supernet.distill_steps = 5;
  c.supernet.calibration_images = 64;
  c.supernet.precisions = "fp32,int8";
  c.supernet.qat_images = 256;
  c.supernet.qat_steps = 10;

  // a backbone of another architecture is refused before anything is written
  {
    TrainConfig other = c;
    other.supernet = SupernetConfig{};
    other.model.widths = {8, 8};
    other.out_dir = (dir / "other").string();
    std::ostringstream log;
    const auto path = train(other, false, log).checkpoint_path;
    TrainConfig bad = c;
    bad.supernet.backbone = path;
    try {
      train_supernet(bad, log);
      FAIL() << "a foreign backbone was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("different architecture"), std::string::npos);
    }
    EXPECT_FALSE(fs::exists(dir / "out"));
  }
  // so is an every-step branch the space lacks, an early exit, or the smallest
  const auto spec = ResNetSpec::from_config(c.model, 1, 10);
  const Supernet probe(spec, BranchSpace::from_config(c.supernet, spec), 28, 28);
  const std::string smallest = probe.branch(probe.smallest()).name;
  const std::pair<std::string, const char*> bad_names[] = {
      {"w0.30", "not a branch"}, {"w0.50>exit@1", "early exit"}, {smallest, "smallest"}};
  for (const auto& [name, why] : bad_names) {
    TrainConfig bad = c;
    bad.supernet.every_step = name;
    std::ostringstream log;
    try {
      train_supernet(bad, log);
      FAIL() << name << " was accepted";
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(std::string("supernet.every_step: '") + name + "'"), std::string::npos)
          << what;
      EXPECT_NE(what.find(why), std::string::npos) << what;
    }
    EXPECT_FALSE(fs::exists(dir / "out"));
  }

  std::ostringstream log;
  const auto outcome = train_supernet(c, log);
  for (const char* phase : {"phase 1/5", "phase 2/5", "phase 3/5", "phase 4/5", "phase 5/5"})
    EXPECT_NE(log.str().find(phase), std::string::npos) << phase;
  EXPECT_NE(log.str().find("students' losses x0.50"), std::string::npos) << log.str();
  EXPECT_GT(outcome.test.accuracy, 0.3) << log.str();  // chance is 0.1
  auto net = std::dynamic_pointer_cast<Supernet>(
      load_model(read_checkpoint(outcome.checkpoint_path), outcome.checkpoint_path));
  ASSERT_TRUE(net);
  // 2 widths x (conv, dpconv and fire, each at 2 exits)
  EXPECT_EQ(net->branch_count(), 12u);
  EXPECT_NE(log.str().find("stages.1.0.conv2 -> fire: relative error"), std::string::npos);
  const auto summary = nlohmann::json::parse(std::ifstream(dir / "out" / "summary.json"));
  EXPECT_EQ(summary.at("branches").size(), 12u);
  EXPECT_EQ(summary.at("phases").size(), 5u);
  // per joint step: the largest on 32 images, the smallest, w0.50 and 1 sampled on 16 each
  const auto& joint = summary.at("phases").at(2);
  ASSERT_EQ(joint.at("phase"), "joint");
  const int64_t steps =
      summary.at("phases").at(0).at("images").get<int64_t>() / c.train.epochs / 32;  // warm-up
  EXPECT_EQ(joint.at("images").get<int64_t>(), steps * (32 + 3 * 16)) << joint;
  // the CLI: one CSV row per branch; an unknown branch is one line and a non-zero exit
  const std::string cli = std::string(ADASCALE_CLI) + " eval --checkpoint " +
                          outcome.checkpoint_path + " --threads 1 --latency-runs 3";
  const auto csv = dir / "branches.csv";
  ASSERT_EQ(std::system((cli + " --branches all --csv >" + csv.string()).c_str()), 0);
  std::ifstream rows(csv);
  std::string line;
  int lines = 0;
  while (std::getline(rows, line)) ++lines;
  EXPECT_EQ(lines, 1 + 12 + 12);  // every branch, fp32 and int8
  // an int8 twin stays close to its fp32 branch (300 test images: one image is 0.33 pt)
  const auto int8_rows = dir / "int8.csv";
  ASSERT_EQ(
      std::system((cli + " --branches 'w1.00,w1.00>int8' --csv >" + int8_rows.string()).c_str()),
      0);
  std::ifstream pair(int8_rows);
  std::vector<double> acc;
  std::vector<long long> bytes;
  std::getline(pair, line);
  while (std::getline(pair, line)) {
    std::stringstream ss(line);
    std::string field;
    std::vector<std::string> f;
    while (std::getline(ss, field, ',')) f.push_back(field);
    ASSERT_GE(f.size(), 5u) << line;
    acc.push_back(std::stod(f[1]));
    bytes.push_back(std::stoll(f[4]));
  }
  ASSERT_EQ(acc.size(), 2u);
  // 300 test images: 0.05 is 15 of them, room for a briefly trained network on another CPU
  EXPECT_NEAR(acc[1], acc[0], 0.05);
  EXPECT_LT(bytes[1], bytes[0] / 3);  // int8 weights
  EXPECT_NE(std::system((cli + " --branches w0.33 2>/dev/null").c_str()), 0);
  fs::remove_all(dir);
}
