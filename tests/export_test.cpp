// export: ResNet variants lowered into one bundle, parity with LibTorch, shared tensors
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <sstream>

#include "export/bundle_exporter.h"
#include "export/int8_quantizer.h"
#include "export/model_lowering.h"
#include "models/resnet_compression.h"
#include "resnet_fixture.h"
#include "runtime/backend.h"
#include "runtime/branch_costs.h"
#include "runtime/bundle.h"
#include "supernet/model_loading.h"
#include "supernet/supernet.h"
#include "supernet/supernet_training.h"
#include "trainer/checkpoint.h"
#include "trainer/training.h"

namespace fs = std::filesystem;
using namespace adascale;
using namespace adascale::trainer;

namespace {

trainer::CompressedResNet random_resnet() {
  return adascale::testing::random_resnet(11, 8, {8, 16}, {1, 1}, 5);
}

fs::path temp_dir() {
  auto d = fs::temp_directory_path() / ("adascale_export_test_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// export options for the 5-class fixtures: a quick parity check and few latency runs; given
// images, int8 branches calibrate on 64 of them
exporter::ExportOptions quick_options(int64_t parity_images, int64_t latency_runs,
                                      const torch::Tensor& images = {},
                                      const torch::Tensor& labels = {}) {
  exporter::ExportOptions o;
  o.parity_images = parity_images;
  o.latency_runs = latency_runs;
  o.class_names = {"a", "b", "c", "d", "e"};
  // random weights and labels make near ties common, and an int8 kernel may be one step off per
  // node (the XNNPACK path on a CPU without VNNI): a flip or two on 32-48 images is legitimate
  o.int8_agreement = 0.95;
  if (images.defined()) {
    o.calibration_images = images;
    o.calibration_labels = labels;
    o.quantization.calibration_images = 64;
  }
  return o;
}

}  // namespace

TEST(Export, EveryVariantMatchesLibTorchAndSharesTensors) {
  auto base = random_resnet();
  auto images = torch::randn({64, 1, 12, 12});
  auto labels = torch::randint(0, 5, {64});
  compress::DistillOptions fast;
  fast.steps = 20;
  std::vector<exporter::ExportSource> sources = {
      {"backbone", base.spec.to_json(), base.state},
      {"prune0.50", prune_resnet(base, 0.5).spec.to_json(), prune_resnet(base, 0.5).state},
  };
  auto lowrank = lowrank_resnet(base, 0.3, {1});
  sources.push_back({"lowrank0.30@2", lowrank.spec.to_json(), lowrank.state});
  auto dp = substitute_resnet(base, "dpconv", 0, {1}, images, fast, nullptr);
  sources.push_back({"dpconv@2", dp.spec.to_json(), dp.state});
  auto fire = substitute_resnet(base, "fire", 0.5, {1}, images, fast, nullptr);
  sources.push_back({"fire0.50@2", fire.spec.to_json(), fire.state});

  auto dir = temp_dir();
  auto o = quick_options(32, 5);
  o.mean = {0.5f};
  o.std = {0.25f};
  std::ostringstream log;
  auto r = exporter::export_bundle(sources, images, labels, (dir / "m.bundle").string(), o, log);
  ASSERT_EQ(r.branches.size(), 5u);
  for (const auto& b : r.branches) {
    EXPECT_LE(b.max_logit_diff, 1e-3) << b.name;
    EXPECT_LE(b.max_logit_diff_reference, 1e-3) << b.name;
    EXPECT_EQ(b.top1_agreement, 1.0) << b.name;
    EXPECT_DOUBLE_EQ(b.accuracy, b.libtorch_accuracy) << b.name;
  }
  // compressed branches are physically smaller
  EXPECT_LT(r.branches[1].weight_bytes, r.branches[0].weight_bytes / 2);
  EXPECT_LT(r.branches[3].macs, r.branches[0].macs);
  // the stem and stage 1 are identical in four branches: stored once
  EXPECT_GT(r.shared_tensors, 0u);
  EXPECT_LT(r.weights_file_bytes, r.separate_bytes);

  std::unique_ptr<Bundle> bundle;
  auto s = Bundle::open((dir / "m.bundle").string(), &bundle);
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(bundle->branches().size(), 5u);
  EXPECT_NE(bundle->find_branch("fire0.50@2"), nullptr);
  EXPECT_NE(bundle->branches()[0].costs_json.find("latency_ms"), std::string::npos);
  // the costs read back as the runtime reads them: the same numbers, accuracy as a fraction
  for (size_t i = 0; i < r.branches.size(); ++i) {
    BranchCosts costs;
    const Branch& branch = bundle->branches()[i];
    ASSERT_TRUE(parse_branch_costs(branch.name, branch.costs_json, &costs).ok());
    EXPECT_DOUBLE_EQ(*costs.accuracy, r.branches[i].accuracy);
    EXPECT_DOUBLE_EQ(*costs.latency_median_ms, r.branches[i].latency_median_ms);
    EXPECT_EQ(*costs.macs, static_cast<double>(r.branches[i].macs));
    EXPECT_EQ(*costs.pareto, r.branches[i].pareto);
  }
  fs::remove_all(dir);
}

// inverted residuals: 1x1 expansion, 3x3 depthwise and stem with ReLU6, linear projection,
// residual additions; a pruned twin drops expansion channels; int8 twins share the fp32 weights
TEST(Export, MobileNetV2MatchesLibTorchInFp32AndInt8) {
  const auto base = adascale::testing::random_mobilenetv2(12, 3, {1, 2, 2}, 5);
  const auto pruned = prune_mobilenetv2(base, 0.5, {});
  const auto factored = lowrank_mobilenetv2(base, 0.5, {1, 2});
  auto images = torch::randn({64, 3, 12, 12});
  auto labels = torch::randint(0, 5, {64});
  std::vector<exporter::ExportSource> sources = {
      {"backbone", base.spec.to_json(), base.state},
      {"prune0.50", pruned.spec.to_json(), pruned.state},
      {"backbone>int8", base.spec.to_json(), base.state, true},
      {"prune0.50>int8", pruned.spec.to_json(), pruned.state, true},
      {"lowrank0.50@2/3", factored.spec.to_json(), factored.state},
      {"lowrank0.50@2/3>int8", factored.spec.to_json(), factored.state, true},
  };
  auto dir = temp_dir();
  auto o = quick_options(48, 3, images, labels);
  o.mean = {0.5f, 0.5f, 0.5f};
  o.std = {0.25f, 0.25f, 0.25f};
  o.quantization.qat_steps = 0;
  std::ostringstream log;
  auto r = exporter::export_bundle(sources, images, labels, (dir / "m.bundle").string(), o, log);
  ASSERT_EQ(r.branches.size(), 6u);
  for (size_t i : {0, 1, 4}) {
    EXPECT_LE(r.branches[i].max_logit_diff, 1e-3) << r.branches[i].name;
    EXPECT_LE(r.branches[i].max_logit_diff_reference, 1e-3) << r.branches[i].name;
    EXPECT_EQ(r.branches[i].top1_agreement, 1.0) << r.branches[i].name;
  }
  for (size_t i : {2, 3, 5}) {
    EXPECT_EQ(r.branches[i].precision, "int8");
    EXPECT_GE(r.branches[i].top1_agreement, 0.95) << r.branches[i].name;
    EXPECT_GE(r.branches[i].top1_agreement_reference, 0.95) << r.branches[i].name;
  }
  // the pruned branch is physically smaller: half the expansion channels
  EXPECT_LT(r.branches[1].macs, r.branches[0].macs * 3 / 4);
  EXPECT_LT(r.branches[1].weight_bytes, r.branches[0].weight_bytes);
  // the factored one too: two thin 1x1 convolutions where one wide one was
  EXPECT_LT(r.branches[4].macs, r.branches[0].macs);
  std::unique_ptr<Bundle> bundle;
  auto s = Bundle::open((dir / "m.bundle").string(), &bundle);
  ASSERT_TRUE(s.ok()) << s.message;
  const Branch* b = bundle->find_branch("backbone");
  ASSERT_NE(b, nullptr);
  int depthwise = 0, relu6 = 0, adds = 0;
  for (const auto& n : b->nodes) {
    if (n.op == "conv2d" && n.attrs.get_int("groups", 1) > 1) ++depthwise;
    if (n.attrs.get_string("activation", "none") == "relu6") ++relu6;
    if (n.op == "add") ++adds;
  }
  EXPECT_EQ(depthwise, 5);      // one per block
  EXPECT_EQ(relu6, 1 + 5 + 4);  // stem, depthwise, expansions (not in stage 1)
  EXPECT_EQ(adds, 3);           // the stage-1 block (8 -> 8) and the second block of stages 2 and 3
  fs::remove_all(dir);
}

TEST(Export, NarrowFireBranchesAreCutFromTheWideOnesByHalves) {
  // a multi-branch network with fire modules in stage 2: the width-0.5 branch keeps the leading
  // half of each expand, so around them its weights are the wide branch's cut by halves
  ModelConfig m;
  m.stem_width = 8;
  m.widths = {8, 16};
  m.depths = {1, 1};
  const auto base = ResNetSpec::from_config(m, 1, 5);
  SupernetConfig c;
  c.widths = "1.0,0.5";
  c.ops = "fire";
  c.op_stages = "2";
  torch::manual_seed(5);
  Supernet net(base, BranchSpace::from_config(c, base), 12, 12);
  std::vector<exporter::ExportSource> sources;
  for (const char* name : {"w1.00>fire@2", "w0.50>fire@2"}) {
    const int b = net.space().find(name);
    ASSERT_GE(b, 0) << name;
    const auto branch = net.materialize(b);
    sources.push_back({name, branch.spec_json, branch.state});
  }
  auto images = torch::randn({64, 1, 12, 12});
  auto labels = torch::randint(0, 5, {64});
  auto dir = temp_dir();
  std::ostringstream log;
  const auto o = quick_options(32, 2);
  auto wide =
      exporter::export_bundle({sources[0]}, images, labels, (dir / "wide.bundle").string(), o, log);
  auto both =
      exporter::export_bundle(sources, images, labels, (dir / "both.bundle").string(), o, log);
  for (const auto& b : both.branches) EXPECT_LE(b.max_logit_diff, 1e-3) << b.name;
  // the narrow branch adds its BN scales and biases, not its weights
  const size_t narrow_alone = both.separate_bytes - wide.separate_bytes;
  EXPECT_LT(both.weights_file_bytes - wide.weights_file_bytes, narrow_alone / 3) << log.str();
  std::unique_ptr<Bundle> bundle;
  ASSERT_TRUE(Bundle::open((dir / "both.bundle").string(), &bundle).ok());
  int halves = 0;
  for (const auto& node : bundle->find_branch("w0.50>fire@2")->nodes)
    halves += node.attrs.has("weight_slice_halves");
  EXPECT_GE(halves, 3);  // the squeezes and the stage's BN-scaled layers
  fs::remove_all(dir);
}

TEST(Export, ParityFailureWritesNothing) {
  auto base = random_resnet();
  auto dir = temp_dir();
  auto o = quick_options(exporter::ExportOptions{}.parity_images, 1);
  o.parity_tolerance = -1.0;  // nothing can pass
  std::ostringstream log;
  EXPECT_THROW(exporter::export_bundle(
                   {{"backbone", base.spec.to_json(), base.state}}, torch::randn({8, 1, 12, 12}),
                   torch::zeros({8}, torch::kInt64), (dir / "m.bundle").string(), o, log),
               std::runtime_error);
  EXPECT_FALSE(fs::exists(dir / "m.bundle"));
  fs::remove_all(dir);
}

TEST(Export, Int8BranchesAgreeWithFakeQuantLibTorch) {
  auto base = random_resnet();
  auto images = torch::randn({96, 1, 12, 12});
  auto labels = torch::randint(0, 5, {96});
  compress::DistillOptions fast;
  fast.steps = 20;
  // fire brings concat (shared quantization of its inputs), lowrank asymmetric padding
  auto fire = substitute_resnet(base, "fire", 0.5, {1}, images, fast, nullptr);
  auto lowrank = lowrank_resnet(base, 0.3, {1});
  std::vector<exporter::ExportSource> sources = {
      {"backbone", base.spec.to_json(), base.state},
      {"backbone>int8", base.spec.to_json(), base.state, true},
      {"fire0.50@2>int8", fire.spec.to_json(), fire.state, true},
      {"lowrank0.30@2>int8", lowrank.spec.to_json(), lowrank.state, true},
  };
  auto dir = temp_dir();
  auto o = quick_options(48, 3, images, labels);
  o.quantization.qat_steps = 5;
  o.quantization.qat_batch = 16;
  o.quantization.shared_weights = false;  // fine-tuned int8 weights of their own
  std::ostringstream log;
  auto r = exporter::export_bundle(sources, images, labels, (dir / "m.bundle").string(), o, log);
  ASSERT_EQ(r.branches.size(), 4u);
  for (size_t i = 1; i < 4; ++i) {
    const auto& b = r.branches[i];
    EXPECT_EQ(b.precision, "int8");
    EXPECT_GE(b.top1_agreement, 0.99) << b.name;
    EXPECT_GE(b.top1_agreement_reference, 0.99) << b.name;
    EXPECT_GT(b.int8.seconds, 0.0) << b.name;
  }
  // int8 weights: a quarter of the fp32 bytes plus per-channel scales and int32 biases
  EXPECT_LT(r.branches[1].weight_bytes, r.branches[0].weight_bytes / 3);
  EXPECT_NE(log.str().find("QAT steps"), std::string::npos);

  std::unique_ptr<Bundle> bundle;
  auto s = Bundle::open((dir / "m.bundle").string(), &bundle);
  ASSERT_TRUE(s.ok()) << s.message;
  const Branch* q = bundle->find_branch("backbone>int8");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->nodes.front().op, "quantize");
  // int8 up to the features, then a float classifier on the dequantized features
  ASSERT_GE(q->nodes.size(), 3u);
  EXPECT_EQ(q->nodes[q->nodes.size() - 2].op, "dequantize");
  EXPECT_EQ(q->nodes.back().op, "fully_connected");
  EXPECT_EQ(q->nodes[1].op, "conv2d");
  EXPECT_NE(q->costs_json.find("\"precision\":\"int8\""), std::string::npos);
  fs::remove_all(dir);
}

TEST(Export, SharedInt8TwinStoresNoWeightsAndQuantizesLikeTheStoredOne) {
  auto base = random_resnet();
  auto images = torch::randn({16, 1, 12, 12});
  BundleWriter writer;
  exporter::TensorStore store(writer);
  const auto fp32 = exporter::lower_resnet(base.spec, base.state, "b", store);
  exporter::TorchBranch model(fp32, writer.constants());
  model.calibrate(images, 100.0);
  const size_t stored = writer.constants().size();
  const Branch shared = exporter::lower_int8(model, "b>int8", store, &fp32);
  EXPECT_EQ(writer.constants().size(), stored);  // nothing new in the bundle
  int quantized = 0;
  for (const auto& n : shared.nodes) quantized += n.attrs.has("weight_quantize");
  EXPECT_GT(quantized, 2);
  const Branch own = exporter::lower_int8(model, "own>int8", store);
  EXPECT_GT(writer.constants().size(), stored);
  {
    // a bias quantized at a scale other than its input's is refused when prepared
    Branch wrong = shared;
    for (auto& n : wrong.nodes)
      if (n.attrs.has("bias_input_scale")) {
        n.attrs.set("bias_input_scale", 2.0 * n.attrs.get_float("bias_input_scale", 0));
        break;
      }
    std::unique_ptr<PreparedBranch> p;
    const Status s =
        make_reference_backend()->prepare(wrong, writer.constants(), {1, 12, 12, 1}, &p);
    EXPECT_NE(s.message.find("bias_input_scale is not the scale"), std::string::npos) << s.message;
  }
  // quantized at preparation or by compress:: at export: the same bytes, so the same outputs
  const auto x = images.permute({0, 2, 3, 1}).contiguous();
  for (const auto& backend :
       {make_reference_backend(), make_xnnpack_backend(1), make_xnnpack_backend(1, false)}) {
    std::unique_ptr<PreparedBranch> a, b;
    Status s = backend->prepare(shared, writer.constants(), {16, 12, 12, 1}, &a);
    ASSERT_TRUE(s.ok()) << s.message;
    s = backend->prepare(own, writer.constants(), {16, 12, 12, 1}, &b);
    ASSERT_TRUE(s.ok()) << s.message;
    EXPECT_EQ(a->weight_bytes(), b->weight_bytes()) << backend->name();
    std::vector<float> ya(16 * 5), yb(ya.size());
    ASSERT_TRUE(a->run(x.data_ptr<float>(), 16, ya.data(), ya.size()).ok());
    ASSERT_TRUE(b->run(x.data_ptr<float>(), 16, yb.data(), yb.size()).ok());
    EXPECT_EQ(ya, yb) << backend->name();
  }
  // and the fake-quant model agrees with what the runtime computes
  auto prepared = std::unique_ptr<PreparedBranch>();
  ASSERT_TRUE(make_reference_backend()
                  ->prepare(shared, writer.constants(), {16, 12, 12, 1}, &prepared)
                  .ok());
  std::vector<float> y(16 * 5);
  ASSERT_TRUE(prepared->run(x.data_ptr<float>(), 16, y.data(), y.size()).ok());
  torch::NoGradGuard no_grad;
  const auto expected = model.forward(images, true);
  const auto got = torch::from_blob(y.data(), {16, 5}, torch::kFloat32);
  EXPECT_GE(got.argmax(1).eq(expected.argmax(1)).sum().item<int64_t>(), 15);
}

TEST(Export, SharedInt8TwinsAddNoWeightBytesToABundle) {
  auto base = random_resnet();
  auto images = torch::randn({64, 1, 12, 12});
  auto labels = torch::randint(0, 5, {64});
  auto o = quick_options(32, 2, images, labels);
  o.latency_rounds = 1;
  o.quantization.shared_max_loss = 100;  // random labels: any loss is noise
  auto dir = temp_dir();
  std::ostringstream log;
  const exporter::ExportSource fp32{"backbone", base.spec.to_json(), base.state};
  const exporter::ExportSource int8{"backbone>int8", base.spec.to_json(), base.state, true};
  auto alone = exporter::export_bundle({fp32}, images, labels, (dir / "a.bundle").string(), o, log);
  auto both =
      exporter::export_bundle({int8, fp32}, images, labels, (dir / "b.bundle").string(), o, log);
  ASSERT_EQ(both.branches.size(), 2u);
  EXPECT_TRUE(both.branches[0].int8.shared_weights);
  EXPECT_GE(both.branches[0].top1_agreement, 0.99);
  EXPECT_EQ(both.weights_file_bytes, alone.weights_file_bytes) << log.str();
  // the prepared twin holds int8 weights: about a quarter of the fp32 branch's
  EXPECT_LT(both.branches[0].weight_bytes, both.branches[1].weight_bytes / 3);
  // the bundle validates and prepares the twin from the fp32 branch's tensors
  std::unique_ptr<Bundle> bundle;
  Status s = Bundle::open((dir / "b.bundle").string(), &bundle);
  ASSERT_TRUE(s.ok()) << s.message;
  std::unique_ptr<PreparedBranch> twin;
  s = make_xnnpack_backend(1)->prepare(*bundle->find_branch("backbone>int8"), bundle->constants(),
                                       {1, 12, 12, 1}, &twin);
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(twin->weight_bytes(), both.branches[0].weight_bytes);
  // without its fp32 branch in the bundle a twin has nothing to share: it stores its own
  o.quantization.qat_steps = 2;
  o.quantization.qat_batch = 8;
  auto lone = exporter::export_bundle({int8}, images, labels, (dir / "c.bundle").string(), o, log);
  EXPECT_FALSE(lone.branches[0].int8.shared_weights);
  EXPECT_NE(log.str().find("no fp32 branch in the bundle"), std::string::npos);
  EXPECT_LT(lone.weights_file_bytes, alone.weights_file_bytes / 2);
  fs::remove_all(dir);
}

TEST(Export, Int8FakeQuantTracksTheFloatBranchAndQatMovesOnlyItsCopy) {
  auto base = random_resnet();
  BundleWriter scratch;
  exporter::TensorStore store(scratch);
  auto fp32 = exporter::lower_resnet(base.spec, base.state, "b", store);
  exporter::TorchBranch model(fp32, scratch.constants());
  auto images = torch::randn({128, 1, 12, 12});
  EXPECT_THROW(model.forward(images, true), std::logic_error);  // not calibrated
  model.calibrate(images, 100.0);
  torch::NoGradGuard no_grad;
  auto f = model.forward(images, false), q = model.forward(images, true);
  // the LibTorch ResNet and the graph executor compute the same float function
  trainer::ResNet net(base.spec);
  load_module_state(net, base.state, "test");
  net.eval();
  EXPECT_LT((net.forward(images) - f).abs().max().item<double>(), 1e-4);
  // quantization noise is small against the logits' spread, and not zero
  const double noise = (q - f).abs().mean().item<double>();
  EXPECT_GT(noise, 0.0);
  EXPECT_LT(noise, 0.1 * f.std().item<double>());
  // fine-tuning changes the branch's own weights, never the shared constants
  const auto before = model.weights().begin()->second.clone();
  exporter::QuantizationOptions o;
  o.qat_steps = 3;
  o.qat_batch = 8;
  o.qat_lr = 0.05;
  std::ostringstream log;
  exporter::Int8Report report;
  {
    torch::AutoGradMode grad(true);
    report = exporter::quantize_branch(model, images, torch::randint(0, 5, {128}), o, log);
  }
  // moved, unless the fine-tuning was discarded for losing accuracy (random labels here)
  const bool moved = (model.weights().begin()->second - before).abs().max().item<double>() > 0.0;
  EXPECT_TRUE(moved || report.reverted) << log.str();
  const auto& c = scratch.constants().at(model.weights().begin()->first);
  auto stored = torch::from_blob(const_cast<void*>(c.data), c.shape, torch::kFloat32);
  if (stored.dim() == 4) stored = stored.permute({0, 3, 1, 2});
  EXPECT_TRUE(torch::equal(stored.contiguous(), before));
}
