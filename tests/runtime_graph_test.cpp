// Graph validation messages and a small end-to-end graph on both backends.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/backend.h"
#include "runtime_test_util.h"

namespace adascale {
namespace {

using testing::make_node;

struct GraphFixture : ::testing::Test {
  void SetUp() override { testing::build_small_model(&writer); }
  Branch lookup(const std::string& name) {
    const std::string path = testing::temp_path("graph_" + name + ".bundle");
    EXPECT_TRUE(writer.write(path).ok());
    std::unique_ptr<Bundle> bundle;
    EXPECT_TRUE(Bundle::open(path, &bundle).ok());
    return *bundle->find_branch(name);
  }
  Status infer(const Branch& b) {
    std::unordered_map<std::string, TensorInfo> infos;
    return infer_shapes(b, {1, 8, 8, 3}, writer.constants(), &infos);
  }
  BundleWriter writer;
};

TEST_F(GraphFixture, ValidBranchesInfer) {
  for (const char* name : {"full", "early", "int8"}) EXPECT_TRUE(infer(lookup(name)).ok()) << name;
}

TEST_F(GraphFixture, UnknownTensorIsReported) {
  Branch b = lookup("full");
  b.nodes[2].inputs[0] = "nope";
  const Status s = infer(b);
  EXPECT_EQ(s.code, ErrorCode::kInvalidGraph);
  EXPECT_NE(s.message.find("'nope'"), std::string::npos) << s.message;
}

TEST_F(GraphFixture, UseBeforeDefineOrCycleIsReported) {
  Branch b = lookup("full");
  b.nodes[1].inputs[0] = "r1";  // r1 is produced by a later node: a cycle bn -> r1 -> bn
  const Status s = infer(b);
  EXPECT_EQ(s.code, ErrorCode::kInvalidGraph);
  EXPECT_NE(s.message.find("cycle"), std::string::npos) << s.message;
}

TEST_F(GraphFixture, WrongChannelCountIsReported) {
  Branch b = lookup("full");
  b.nodes[3].params["weight"] = "stem.w";  // expects 8 input channels, stem.w has 3
  const Status s = infer(b);
  EXPECT_EQ(s.code, ErrorCode::kInvalidGraph);
  EXPECT_NE(s.message.find("weight shape"), std::string::npos) << s.message;
}

TEST_F(GraphFixture, DuplicateDefinitionUnknownOpAndMissingParam) {
  Branch b = lookup("full");
  b.nodes[2].output = "c1";
  EXPECT_NE(infer(b).message.find("defined twice"), std::string::npos);
  b = lookup("full");
  b.nodes[2].op = "gelu";
  EXPECT_NE(infer(b).message.find("unknown op"), std::string::npos);
  b = lookup("full");
  b.nodes[1].params.erase("shift");
  EXPECT_NE(infer(b).message.find("missing param 'shift'"), std::string::npos);
  b = lookup("full");
  b.nodes[1].params["shift"] = "absent";
  EXPECT_NE(infer(b).message.find("unknown constant tensor 'absent'"), std::string::npos);
  b = lookup("full");
  b.output = "zzz";
  EXPECT_NE(infer(b).message.find("never defined"), std::string::npos);
}

TEST_F(GraphFixture, EndToEndReferenceMatchesXnnpack) {
  auto reference = make_reference_backend();
  auto xnnpack = make_xnnpack_backend(1);
  std::mt19937 rng(3);
  for (const char* name : {"full", "early", "int8"}) {
    const Branch b = lookup(name);
    std::unique_ptr<PreparedBranch> ref, xnn;
    ASSERT_TRUE(reference->prepare(b, writer.constants(), {1, 8, 8, 3}, &ref).ok());
    Status s = xnnpack->prepare(b, writer.constants(), {1, 8, 8, 3}, &xnn);
    ASSERT_TRUE(s.ok()) << s.message;
    EXPECT_EQ(xnn->output_features(), testing::kClasses);
    EXPECT_GT(xnn->arena_bytes(), 0u);
    EXPECT_GT(xnn->weight_bytes(), 0u);
    // Only flatten and exit (plain copies) lack an XNNPACK kernel.
    EXPECT_EQ(xnn->reference_fallbacks(), std::string(name) == "int8" ? 1u : 2u) << name;
    for (int64_t batch : {1, 3, 1}) {
      const auto input = testing::random_floats(rng, batch * 8 * 8 * 3, -2, 2);
      std::vector<float> a(batch * testing::kClasses), c(a.size());
      ASSERT_TRUE(ref->run(input.data(), batch, a.data(), a.size()).ok());
      ASSERT_TRUE(xnn->run(input.data(), batch, c.data(), c.size()).ok());
      // int8: one output step of the last int8 tensor moves a logit by at most
      // 0.02 * sum|fc.w row| <= 0.2
      const float tol = std::string(name) == "int8" ? 0.2f : 1e-4f;
      for (size_t i = 0; i < a.size(); ++i)
        EXPECT_NEAR(a[i], c[i], tol * std::max(1.0f, std::fabs(a[i]))) << name << " " << i;
    }
  }
}

TEST_F(GraphFixture, ArenaReusesMemoryOfDeadTensors) {
  const Branch b = lookup("full");
  std::unordered_map<std::string, TensorInfo> infos;
  ASSERT_TRUE(infer_shapes(b, {1, 8, 8, 3}, writer.constants(), &infos).ok());
  size_t all = 0;
  for (const auto& kv : infos) all += kv.second.bytes();
  std::unique_ptr<PreparedBranch> prepared;
  ASSERT_TRUE(
      make_reference_backend()->prepare(b, writer.constants(), {1, 8, 8, 3}, &prepared).ok());
  // Peak is three live 8x8x8 f32 tensors (r1, c2, res) plus padding, well under the sum.
  EXPECT_LT(prepared->arena_bytes(), all);
  EXPECT_GE(prepared->arena_bytes(), 3u * 8 * 8 * 8 * 4);
}

TEST_F(GraphFixture, RunRejectsSmallOutputBuffer) {
  std::unique_ptr<PreparedBranch> prepared;
  ASSERT_TRUE(make_xnnpack_backend()
                  ->prepare(lookup("early"), writer.constants(), {1, 8, 8, 3}, &prepared)
                  .ok());
  std::vector<float> input(8 * 8 * 3, 0.1f), out(2);
  const Status s = prepared->run(input.data(), 1, out.data(), out.size());
  EXPECT_EQ(s.code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(s.message.empty());
}

}  // namespace
}  // namespace adascale

namespace adascale {
namespace {

// A branch that uses 5 of block.w's 8 output channels and 3 of its 8 inputs, scaled per output
// channel, computes what the same branch with that slice stored explicitly computes: the leading
// ones, or by halves (rows 0-1 and 4-6, inputs 0 and 4-5: a narrower fire module's channels).
TEST_F(GraphFixture, SharedWeightSliceEqualsTheExplicitSlice) {
  for (const bool halves : {false, true}) {
    SCOPED_TRACE(halves ? "by halves" : "leading");
    std::mt19937 rng(11);
    const ConstTensor& block = writer.constants().at("block.w");  // [8, 3, 3, 8]
    const float* w = static_cast<const float*>(block.data);
    const auto mul = testing::random_floats(rng, 5, 0.5f, 1.5f);
    const std::vector<int> rows =
        halves ? std::vector<int>{0, 1, 4, 5, 6} : std::vector<int>{0, 1, 2, 3, 4};
    const std::vector<int> cols = halves ? std::vector<int>{0, 4, 5} : std::vector<int>{0, 1, 2};
    std::vector<float> sliced;
    for (int o = 0; o < 5; ++o)
      for (int k = 0; k < 9; ++k)
        for (int i : cols) sliced.push_back(w[(rows[o] * 9 + k) * 8 + i] * mul[o]);
    const std::string tag = halves ? "h" : "l";
    ASSERT_TRUE(writer.add_f32("mul5" + tag, {5}, mul).ok());
    ASSERT_TRUE(writer.add_f32("block.w.slice" + tag, {5, 3, 3, 3}, sliced).ok());
    ASSERT_TRUE(writer
                    .add_f32("fc5.w" + tag, {testing::kClasses, 5},
                             testing::random_floats(rng, testing::kClasses * 5, -1, 1))
                    .ok());
    auto branch = [&](bool shared) {
      Branch b;
      b.name = (shared ? "shared" : "explicit") + tag;
      b.output = "logits";
      b.nodes =
          testing::small_classifier(shared ? "block.w" : "block.w.slice" + tag, "", "fc5.w" + tag);
      b.input = "input";
      if (shared) {
        b.nodes[0].attrs.set("weight_slice", std::vector<int64_t>{5, 3});
        if (halves) b.nodes[0].attrs.set("weight_slice_halves", std::vector<int64_t>{1, 1});
        b.nodes[0].params["weight_mul"] = "mul5" + tag;
      }
      return b;
    };
    const Shape in = {2, 6, 6, 3};
    const auto x = testing::random_floats(rng, 2 * 6 * 6 * 3, -1, 1);
    for (const auto& backend : {make_reference_backend(), make_xnnpack_backend(1)}) {
      std::unique_ptr<PreparedBranch> a, b;
      Status s = backend->prepare(branch(true), writer.constants(), in, &a);
      ASSERT_TRUE(s.ok()) << s.message;
      ASSERT_TRUE(backend->prepare(branch(false), writer.constants(), in, &b).ok());
      EXPECT_EQ(a->weight_bytes(), b->weight_bytes());  // the slice, not the stored tensor
      std::vector<float> ya(2 * testing::kClasses), yb(ya.size());
      ASSERT_TRUE(a->run(x.data(), 2, ya.data(), ya.size()).ok());
      ASSERT_TRUE(b->run(x.data(), 2, yb.data(), yb.size()).ok());
      for (size_t i = 0; i < ya.size(); ++i) EXPECT_NEAR(ya[i], yb[i], 1e-5f) << backend->name();
    }
    // the bundle stores the shared branch and validates it on open
    ASSERT_TRUE(writer.add_branch(branch(true)).ok());
    EXPECT_EQ(lookup("shared" + tag).nodes[0].attrs.get_ints("weight_slice", {}),
              (std::vector<int64_t>{5, 3}));
    EXPECT_EQ(lookup("shared" + tag).nodes[0].attrs.has("weight_slice_halves"), halves);
  }
}

TEST_F(GraphFixture, BadSharedWeightsAreReported) {
  auto error = [&](auto edit, const ConstantMap* constants = nullptr) {
    Branch b;
    b.name = "bad";
    b.output = "logits";
    b.nodes = testing::small_classifier("block.w", "", "fc.w");
    edit(b);
    DerivedWeights d;
    Status s = derive_weights(b, constants ? *constants : writer.constants(), false, &d);
    return s.ok() ? std::string() : s.message;
  };
  EXPECT_NE(error([](Branch& b) {
              b.nodes[0].attrs.set("weight_slice", std::vector<int64_t>{9, 3});
            }).find("weight_slice must be [O', I'] within the weight [8,3,3,8]"),
            std::string::npos);
  EXPECT_NE(error([](Branch& b) {
              b.nodes[0].attrs.set("weight_slice_halves", std::vector<int64_t>{1, 0});
            }).find("weight_slice_halves must be [R, C] of 0 or 1, with weight_slice"),
            std::string::npos);
  EXPECT_NE(error([](Branch& b) {
              b.nodes[0].attrs.set("weight_slice", std::vector<int64_t>{4, 3});
              b.nodes[0].attrs.set("weight_slice_halves", std::vector<int64_t>{2, 0});
            }).find("weight_slice_halves must be"),
            std::string::npos);
  EXPECT_NE(error([](Branch& b) {
              b.nodes[0].params["weight_mul"] = "fc.b";
            }).find("weight_mul must be a float32 tensor of shape [8]"),
            std::string::npos);
  EXPECT_NE(error([](Branch& b) {
              b.nodes[1].attrs.set("weight_slice", std::vector<int64_t>{1, 1});
            }).find("apply to conv2d and fully_connected"),
            std::string::npos);
  EXPECT_NE(error([](Branch& b) {
              b.nodes[0].params["weight"] = "stem.w.q";
              b.nodes[0].attrs.set("weight_slice", std::vector<int64_t>{4, 3});
            }).find("need a float32 weight"),
            std::string::npos);
  auto quantized = [](Branch& b) {
    b.nodes[0].attrs.set("weight_quantize", "int8").set("bias_input_scale", 0.5);
  };
  EXPECT_EQ(error(quantized), "");
  EXPECT_NE(error([&](Branch& b) {
              quantized(b);
              b.nodes[0].attrs.set("weight_quantize", "int4");
            }).find("weight_quantize must be \"int8\""),
            std::string::npos);
  EXPECT_NE(error([&](Branch& b) {
              quantized(b);
              b.nodes[0].attrs.numbers.erase("bias_input_scale");
            }).find("needs a positive normal bias_input_scale"),
            std::string::npos);
  EXPECT_NE(error([&](Branch& b) {
              quantized(b);
              b.nodes[0].params["bias"] = "fc.b";
            }).find("bias must be a float32 tensor of shape [8]"),
            std::string::npos);
  EXPECT_NE(error([&](Branch& b) {
              quantized(b);
              b.nodes[0].params["weight_scale"] = "fc.b";
            }).find("none may be stored"),
            std::string::npos);
  // a stored weight with an empty axis (the reader accepts zero-element tensors)
  ConstantMap with_empty = writer.constants();
  with_empty["empty.w"] = ConstTensor{DType::kF32, {8, 3, 3, 0}, nullptr};
  EXPECT_NE(error(
                [&](Branch& b) {
                  b.nodes[0].params["weight"] = "empty.w";
                  quantized(b);
                },
                &with_empty)
                .find("no empty axis"),
            std::string::npos);
  EXPECT_EQ(error([](Branch&) {}), "");
}

}  // namespace
}  // namespace adascale
