// compress: physical pruning, low-rank factors, operator substitution, the ops language
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "compress/channel_pruning.h"
#include "compress/conv_variants.h"
#include "compress/distillation.h"
#include "compress/low_rank.h"
#include "compress/mac_counter.h"
#include "models/mobilenetv2_compression.h"
#include "models/resnet.h"
#include "models/resnet_compression.h"
#include "resnet_fixture.h"
#include "supernet/operator.h"
#include "trainer/checkpoint.h"

using namespace adascale;
using namespace adascale::trainer;

namespace {

// a MobileNetV2's logits for x, in eval mode
torch::Tensor forward(const CompressedMobileNetV2& m, const torch::Tensor& x) {
  MobileNetV2 net(m.spec);
  load_module_state(net, m.state, "test");
  net.eval();
  torch::NoGradGuard no_grad;
  return net.forward(x);
}

// stem 8 with an identity chain into stage 1 (widths 8, two blocks) and a strided stage 2 (12)
CompressedResNet small_resnet(uint64_t seed) {
  return adascale::testing::random_resnet(seed, 8, {8, 12}, {2, 1}, 5);
}

torch::Tensor run(const CompressedResNet& m, const torch::Tensor& x) {
  ResNet net(m.spec);
  load_module_state(net, m.state, "test");
  net.eval();
  torch::NoGradGuard no_grad;
  return net.forward(x);
}

// zeroes, in `masked`, every producer (filters, BN affine) of the channels of `g` that pruning
// to `fraction` drops from `full`, keeping the shapes
void mask_dropped_channels(const compress::ChannelGroup& g, const compress::StateDict& full,
                           double fraction, compress::StateDict* masked) {
  auto keep =
      compress::top_channels(compress::channel_importance(g, full, compress::Importance::kFilterL1),
                             std::lround(fraction * g.size));
  auto drop = torch::ones({g.size}, torch::kBool);
  for (auto k : keep) drop[k] = false;
  for (const auto& p : g.producers) {
    if (p.tensor.find("running_") != std::string::npos) continue;
    auto& t = masked->at(p.tensor);
    t = t.clone();
    t.index_put_({drop}, 0.0);
  }
}

int64_t params(const CompressedResNet& m) {
  int64_t n = 0;
  for (auto& [name, t] : m.state)
    if (name.find("running_") == std::string::npos && name.find("num_batches") == std::string::npos)
      n += t.numel();
  return n;
}

}  // namespace

TEST(ChannelPruning, PrunedNetworkEqualsMaskedFullNetwork) {
  auto full = small_resnet(1);
  auto pruned = prune_resnet(full, 0.5);
  // mask: zero every producer of the removed channels (filters and BN affine), keep the shapes
  auto masked = full;
  for (const auto& g : resnet_channel_groups(full.spec)) {
    mask_dropped_channels(g, full.state, 0.5, &masked.state);
  }
  auto x = torch::randn({3, 1, 16, 16});
  auto a = run(masked, x), b = run(pruned, x);
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5)) << (a - b).abs().max().item<float>();
  EXPECT_LT(params(pruned), params(full) / 2);
  EXPECT_EQ(pruned.spec.stem, 4);
  EXPECT_EQ(pruned.spec.stages[1][0].out, 6);
  // removed channels are physically gone
  EXPECT_EQ(pruned.state.at("stages.1.0.conv2.weight").sizes(),
            (std::vector<int64_t>{6, pruned.spec.stages[1][0].mid, 3, 3}));
  EXPECT_EQ(pruned.state.at("fc.weight").size(1), 6);
}

// a MobileNetV2's expansion channels: masking the dropped ones (expansion and depthwise filters
// and BN affine at zero) computes what the physically pruned network computes
TEST(ChannelPruning, MobileNetV2ExpansionPruningEqualsMaskedNetwork) {
  const auto full = adascale::testing::random_mobilenetv2(3, 1, {1, 2, 1}, 5);
  const auto pruned = prune_mobilenetv2(full, 0.5, {});
  auto masked = full;
  const auto groups = mobilenetv2_expansion_groups(full.spec);
  ASSERT_EQ(groups.size(), 3u);  // the first stage does not expand
  for (const auto& g : groups) {
    mask_dropped_channels(g, full.state, 0.5, &masked.state);
  }
  const auto x = torch::randn({3, 1, 16, 16});
  const auto a = forward(masked, x), b = forward(pruned, x);
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5)) << (a - b).abs().max().item<float>();
  // stage 2's first block expands 8 -> 32 channels: 16 are left, physically
  EXPECT_EQ(pruned.spec.stages[1][0].hidden, 16);
  EXPECT_EQ(pruned.state.at("stages.1.0.expand.conv.weight").size(0), 16);
  EXPECT_EQ(pruned.state.at("stages.1.0.depthwise.conv.weight").size(0), 16);
  EXPECT_EQ(pruned.state.at("stages.1.0.project.conv.weight").size(1), 16);
  // the blocks' outputs, tied by residual additions, keep their channels
  EXPECT_EQ(pruned.spec.stages[1][1].out, full.spec.stages[1][1].out);
  // only the stages asked for
  const auto stage3 = prune_mobilenetv2(full, 0.25, {2});
  EXPECT_EQ(stage3.spec.stages[1][0].hidden, 32);
  EXPECT_EQ(stage3.spec.stages[2][0].hidden, 16);
  // the spec travels as JSON and names its family
  EXPECT_EQ(MobileNetV2Spec::from_json(pruned.spec.to_json()).stages[1][0].hidden, 16);
  EXPECT_EQ(spec_architecture(pruned.spec.to_json()), "mobilenetv2");
  EXPECT_THROW(ResNetSpec::from_json(pruned.spec.to_json()), ConfigError);
}

// low-rank factors of a MobileNetV2's 1x1 convolutions from their SVD: at full rank the same
// function; at a quarter of it physically smaller; a 1x1 factored twice or a rank beyond the
// layer is refused; pruning before the factors keeps them consistent
TEST(LowRank, MobileNetV2PointwiseFactorsFromTheSvd) {
  const auto full = adascale::testing::random_mobilenetv2(5, 1, {1, 2, 1}, 5);
  const auto x = torch::randn({3, 1, 16, 16});
  const auto exact = lowrank_mobilenetv2(full, 1.0, {});
  EXPECT_LT((forward(exact, x) - forward(full, x)).abs().max().item<double>(), 1e-4);
  const auto small = lowrank_mobilenetv2(full, 0.25, {1, 2});
  // stage 2's first block: 8 -> 32 expansion (rank 2), 32 -> 16 projection (rank 4)
  EXPECT_EQ(small.spec.stages[1][0].expand_rank, 2);
  EXPECT_EQ(small.spec.stages[1][0].project_rank, 4);
  EXPECT_EQ(small.spec.stages[0][0].project_rank, 0);  // stage 1 not asked for
  EXPECT_EQ(small.state.at("stages.1.0.project.reduce.weight").sizes(),
            (std::vector<int64_t>{4, 32, 1, 1}));
  EXPECT_EQ(small.state.at("stages.1.0.project.conv.weight").sizes(),
            (std::vector<int64_t>{16, 4, 1, 1}));
  MobileNetV2 a(full.spec), b(small.spec);
  EXPECT_LT(measure_cost(b, 1, 16, 16).macs, measure_cost(a, 1, 16, 16).macs);
  EXPECT_EQ(MobileNetV2Spec::from_json(small.spec.to_json()).stages[1][0].project_rank, 4);
  EXPECT_THROW(lowrank_mobilenetv2(small, 0.5, {2}), ConfigError);  // factored already
  auto j = nlohmann::json::parse(small.spec.to_json());
  j["stages"][1][0]["project_rank"] = 17;  // beyond min(32, 16)
  EXPECT_THROW(MobileNetV2Spec::from_json(j.dump()), ConfigError);
  // prune, then factor: the factors read the pruned channels
  const auto both = lowrank_mobilenetv2(prune_mobilenetv2(full, 0.5, {}), 0.5, {});
  EXPECT_EQ(both.spec.stages[1][0].hidden, 16);
  EXPECT_EQ(both.state.at("stages.1.0.project.reduce.weight").size(1), 16);
  EXPECT_EQ(forward(both, x).size(1), 5);
}

// a spec read from a checkpoint (checksums recomputed) cannot make the loader allocate gigabytes
TEST(Models, ResNetSpecsBoundWhatTheyAllocate) {
  const auto good = small_resnet(1).spec;
  auto error = [&](auto edit) {
    auto j = nlohmann::json::parse(good.to_json());
    edit(j);
    try {
      ResNetSpec::from_json(j.dump());
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error([](auto&) {}), "");
  EXPECT_NE(error([](auto& j) { j["stages"][1][0]["mid"] = int64_t{1} << 40; }).find("wider than"),
            std::string::npos);
  EXPECT_NE(error([](auto& j) {
              j["stages"][1][0]["conv1"] = {{"kind", "lowrank"}, {"rank", int64_t{1} << 50}};
            }).find("wider than"),
            std::string::npos);
  EXPECT_NE(error([](auto& j) {
              j["stages"][1][0]["mid"] = 65536;
              j["stages"][1][0]["out"] = 65536;
            }).find("more than 268435456 parameters"),
            std::string::npos);
  EXPECT_NE(error([](auto& j) { j["classes"] = int64_t{1} << 20; }).find("at most 65536"),
            std::string::npos);
}

TEST(Models, MobileNetV2SpecsAreCheckedByName) {
  const auto good = adascale::testing::random_mobilenetv2(4, 1, {1, 1, 1}, 5).spec;
  auto error = [&](const std::string& text) {
    try {
      MobileNetV2Spec::from_json(text);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto edited = [&](auto edit) {
    auto j = nlohmann::json::parse(good.to_json());
    edit(j);
    return error(j.dump());
  };
  EXPECT_EQ(error(good.to_json()), "");
  {  // the count the bound is checked on is the network's own
    MobileNetV2 net(good);
    EXPECT_EQ(good.parameters(), measure_cost(net, 1, 16, 16).params);
  }
  EXPECT_NE(
      edited([](auto& j) { j["stages"][1][0]["hidden"] = 0; }).find("block 1.0's expansion width"),
      std::string::npos);
  EXPECT_NE(edited([](auto& j) {
              j["stages"][1][0]["hidden"] = int64_t{1} << 40;
            }).find("not in [1, 65536]"),
            std::string::npos);
  EXPECT_NE(edited([](auto& j) { j["stages"][0][0]["hidden"] = 5; }).find("does not expand"),
            std::string::npos);
  EXPECT_NE(edited([](auto& j) { j["stages"][2][0]["in"] = 7; }).find("takes 7 channels"),
            std::string::npos);
  EXPECT_NE(edited([](auto& j) { j["stages"][1][0]["stride"] = 3; }).find("stride"),
            std::string::npos);
  // channel counts each within bounds, but a network of gigabytes: refused before allocation
  EXPECT_NE(edited([](auto& j) {
              j["stages"][1][0]["hidden"] = 65536;
              j["stages"][1][0]["out"] = 65536;
              j["stages"][2][0]["in"] = 65536;
            }).find("parameters, more than"),
            std::string::npos);
  EXPECT_NE(edited([](auto& j) { j["arch"] = "resnet"; }).find("not a mobilenetv2"),
            std::string::npos);
  EXPECT_NE(edited([](auto& j) { j["stages"][1][0].erase("expand"); }).find("malformed"),
            std::string::npos);
  EXPECT_NE(error("{").find("malformed mobilenetv2 spec"), std::string::npos);
}

TEST(ChannelPruning, GroupsTieResidualChains) {
  auto m = small_resnet(2);
  auto groups = resnet_channel_groups(m.spec);
  // stem + two identity blocks form one group; each block has a mid group; stage 2 starts a group
  ASSERT_EQ(groups.size(), 5u);
  auto it = std::find_if(groups.begin(), groups.end(), [](auto& g) { return g.name == "stem"; });
  ASSERT_NE(it, groups.end());
  const auto& stem = *it;
  int convs = 0;
  for (const auto& p : stem.producers) convs += p.tensor.find("conv") != std::string::npos;
  EXPECT_EQ(convs, 3);  // stem conv + conv2 of both identity blocks
  EXPECT_THROW(compress::select_channels(m.state, stem, {0, 99}), std::invalid_argument);
}

TEST(LowRank, ErrorFallsWithRankAndVanishesAtFullRank) {
  torch::manual_seed(3);
  auto w = torch::randn({16, 8, 3, 3});
  const int64_t full = compress::full_spatial_rank(w);
  EXPECT_EQ(full, 24);
  double last = 1e9;
  for (int64_t r : {1, 4, 8, 16, 24}) {
    auto f = compress::decompose_spatial(w, r);
    const double err = ((compress::compose_spatial(f) - w).norm() / w.norm()).item<double>();
    EXPECT_LT(err, last) << "rank " << r;
    last = err;
  }
  EXPECT_LT(last, 1e-5);
  // the factor pair computes the convolution itself (with stride and padding)
  auto f = compress::decompose_spatial(w, full);
  auto slot = compress::make_conv_slot({"lowrank", full, 0}, 8, 16, 3, 2);
  slot->named_parameters()["v.weight"].data().copy_(f.v);
  slot->named_parameters()["h.weight"].data().copy_(f.h);
  auto x = torch::randn({2, 8, 9, 9});
  auto ref = torch::conv2d(x, w, {}, 2, 1);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(compress::forward_conv_slot(*slot, x), ref, 1e-4, 1e-4));
}

TEST(LowRank, LinearTruncatedSvd) {
  torch::manual_seed(4);
  auto w = torch::randn({10, 32});
  auto f2 = compress::decompose_linear(w, 2), f10 = compress::decompose_linear(w, 10);
  const double e2 = (f2.second.mm(f2.first) - w).norm().item<double>();
  const double e10 = (f10.second.mm(f10.first) - w).norm().item<double>();
  EXPECT_GT(e2, e10);
  EXPECT_LT(e10 / w.norm().item<double>(), 1e-5);
}

TEST(LowRank, ResNetFactorizationIsExactAtFullRankAndSmallerBelow) {
  auto m = small_resnet(5);
  auto x = torch::randn({2, 1, 16, 16});
  auto exact = lowrank_resnet(m, 1.0, {0, 1});
  EXPECT_TRUE(torch::allclose(run(exact, x), run(m, x), 1e-4, 1e-4));
  auto small = lowrank_resnet(m, 0.25, {0, 1});
  EXPECT_LT(params(small), params(m));
  EXPECT_EQ(small.spec.stages[1][0].conv1.kind, "lowrank");
  EXPECT_FALSE(small.state.count("stages.1.0.conv1.weight"));
}

TEST(Substitution, DistillationFitsTheReplacedConv) {
  auto m = small_resnet(6);
  auto calib = torch::randn({128, 1, 16, 16});
  std::ostringstream log;
  compress::DistillOptions o;
  o.steps = 150;
  for (const std::string kind : {"dpconv", "fire"}) {
    auto sub = substitute_resnet(m, kind, 0.5, {1}, calib, o, &log);
    EXPECT_EQ(sub.spec.stages[1][0].conv2.kind, kind);
    EXPECT_TRUE(sub.state.count(kind == "dpconv" ? "stages.1.0.conv1.dw.weight"
                                                 : "stages.1.0.conv1.squeeze.weight"));
    EXPECT_LT(params(sub), params(m));
    // the distilled network stays close to the original (an untrained one would not)
    auto x = calib.slice(0, 0, 16);
    const double rel = ((run(sub, x) - run(m, x)).norm() / run(m, x).norm()).item<double>();
    EXPECT_LT(rel, 0.5) << kind << "\n" << log.str();
  }
}

// the memory order around convolutions is a speed choice only: a training step (stem 16 and a
// 12-wide stage, so both orders meet) gives the same loss and gradients either way
TEST(ConvMemoryOrder, OutputsAndGradientsDoNotDependOnIt) {
  using compress::ConvMemoryOrder;
  const auto m = adascale::testing::random_resnet(7, 16, {16, 12}, {1, 1}, 5);
  const auto x = torch::randn({6, 1, 12, 12});
  auto step = [&](ConvMemoryOrder order) {
    compress::set_conv_memory_order(order);
    ResNet net(m.spec);
    load_module_state(net, m.state, "test");
    net.train();
    auto out = net.forward(x);
    out.pow(2).sum().backward();
    std::vector<torch::Tensor> r{out.detach()};
    for (auto& p : net.parameters()) r.push_back(p.grad().clone());
    compress::set_conv_memory_order(ConvMemoryOrder::kTuned);
    return r;
  };
  const auto tuned = step(ConvMemoryOrder::kTuned), nchw = step(ConvMemoryOrder::kNchw);
  ASSERT_EQ(tuned.size(), nchw.size());
  for (size_t i = 0; i < tuned.size(); ++i)
    // different kernels sum in different orders: relative to the tensor's largest entry
    EXPECT_LE((tuned[i] - nchw[i]).abs().max().item<double>(),
              1e-4 * (1e-3 + nchw[i].abs().max().item<double>()))
        << "tensor " << i;

  // and the orders are the documented ones: NHWC into a convolution, out of it NHWC for
  // multiples of 16 channels and NCHW otherwise
  const auto cl = at::MemoryFormat::ChannelsLast;
  EXPECT_TRUE(compress::conv_input(torch::randn({2, 12, 5, 5})).is_contiguous(cl));
  EXPECT_TRUE(compress::conv_output(torch::randn({2, 32, 5, 5})).is_contiguous(cl));
  EXPECT_TRUE(compress::conv_output(torch::randn({2, 12, 5, 5}).contiguous(cl)).is_contiguous());
  compress::set_conv_memory_order(ConvMemoryOrder::kNchw);
  EXPECT_TRUE(compress::conv_input(torch::randn({2, 12, 5, 5})).is_contiguous());
  compress::set_conv_memory_order(ConvMemoryOrder::kTuned);
}

TEST(CompressOps, ParsingOrderAndNames) {
  auto ops = parse_compress_ops("prune:0.5,lowrank:0.25@3,dpconv@2/3,fire");
  ASSERT_EQ(ops.size(), 4u);
  EXPECT_EQ(canonical_ops_name(ops), "prune0.50>lowrank0.25@3>dpconv@2/3>fire");
  EXPECT_EQ(ops[2].stages, (std::vector<int64_t>{1, 2}));
  EXPECT_THROW(parse_compress_ops("lowrank:0.5,prune:0.5"), ConfigError);  // order
  EXPECT_THROW(parse_compress_ops("shrink:0.5"), ConfigError);
  EXPECT_THROW(parse_compress_ops("prune:1.5"), ConfigError);
  EXPECT_THROW(parse_compress_ops("prune"), ConfigError);
  EXPECT_THROW(parse_compress_ops("dpconv@0"), ConfigError);
  // one grammar: the branch space's spelling and --ops's name the same operator
  EXPECT_EQ(parse_operator("lowrank0.5", "t").canonical(),
            parse_operator("lowrank:0.50", "t").canonical());
  EXPECT_EQ(parse_operator("fire:0.25@3", "t").canonical(), "fire@3");
  EXPECT_THROW(parse_compress_ops("conv"), ConfigError);
  auto m = small_resnet(7);
  EXPECT_THROW(lowrank_resnet(m, 0.5, {5}), ConfigError);  // no such stage
  auto twice = lowrank_resnet(m, 0.5, {1});
  EXPECT_THROW(lowrank_resnet(twice, 0.5, {1}), ConfigError);
  // a prune's stages parse (a MobileNetV2 prunes by stage); a ResNet's prune refuses them
  const auto staged = parse_compress_ops("prune:0.5@2");
  EXPECT_EQ(canonical_ops_name(staged), "prune0.50@2");
  EXPECT_THROW(apply_operators(m, staged, torch::Tensor(), nullptr), ConfigError);
}
