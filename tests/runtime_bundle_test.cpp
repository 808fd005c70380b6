// Bundle v1: write/read round trip and rejection of corrupt or inconsistent bundles.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bundle_fixture.h"
#include "runtime_test_util.h"

namespace adascale {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using testing::dump;
using testing::slurp;
using BundleTest = testing::BundleFixture;

TEST(RuntimeCrc32, MatchesKnownValue) {
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);  // the standard check value
  EXPECT_EQ(crc32("", 0), 0u);
}

TEST_F(BundleTest, RoundTripPreservesEverything) {
  std::unique_ptr<Bundle> bundle;
  const Status s = Bundle::open(path, &bundle);
  ASSERT_TRUE(s.ok()) << s.message;
  EXPECT_EQ(bundle->model_name(), "tiny-resnet");
  EXPECT_EQ(bundle->input().shape_nchw, (Shape{1, 3, 8, 8}));
  EXPECT_EQ(bundle->input().std[1], 0.2f);
  EXPECT_EQ(bundle->classes().size(), 5u);
  ASSERT_EQ(bundle->branches().size(), 3u);
  // stem.w is used by two branches and fc.w by two, yet each is stored once.
  EXPECT_EQ(bundle->constants().size(), writer.constants().size());
  for (const auto& kv : writer.constants()) {
    const ConstTensor& read = bundle->constants().at(kv.first);
    EXPECT_EQ(read.dtype, kv.second.dtype);
    EXPECT_EQ(read.shape, kv.second.shape);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(read.data) % 64, 0u) << kv.first;
    const size_t bytes = shape_elements(read.shape) * dtype_size(read.dtype);
    EXPECT_EQ(std::memcmp(read.data, kv.second.data, bytes), 0) << kv.first;
  }
  const Branch* full = bundle->find_branch("full");
  ASSERT_NE(full, nullptr);
  EXPECT_EQ(full->nodes.size(), 10u);
  EXPECT_EQ(full->nodes[0].attrs.get_ints("pad", {}), (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(full->nodes[9].attrs.get_string("head", ""), "final");
  EXPECT_EQ(json::parse(full->costs_json)["macs"], 12345);
  const Branch* int8 = bundle->find_branch("int8");
  EXPECT_EQ(int8->nodes[1].attrs.get_float("out_scale", 0), 0.05f);
  EXPECT_EQ(bundle->weights_file_bytes() % 64, 0u);
  EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(::getpid())));
}

TEST_F(BundleTest, RewriteReplacesAtomically) {
  ASSERT_TRUE(writer.write(path).ok());
  EXPECT_TRUE(open().ok());
}

TEST_F(BundleTest, MissingDirectory) {
  path += ".absent";
  expect_error(ErrorCode::kIo, "cannot open");
}

TEST_F(BundleTest, TruncatedWeights) {
  const fs::path weights = fs::path(path) / "weights.bin";
  fs::resize_file(weights, fs::file_size(weights) - 100);
  expect_error(ErrorCode::kFormat, "truncated");
  fs::resize_file(weights, 10);
  expect_error(ErrorCode::kFormat, "truncated");
}

TEST_F(BundleTest, FlippedWeightByte) {
  const fs::path weights = fs::path(path) / "weights.bin";
  std::string bytes = slurp(weights);
  bytes[bytes.size() / 2] ^= 0x10;
  dump(weights, bytes);
  expect_error(ErrorCode::kChecksum, "crc32 mismatch");
}

TEST_F(BundleTest, FlippedCatalogByte) {
  const fs::path catalog = fs::path(path) / "catalog.json";
  std::string text = slurp(catalog);
  text[text.find("tiny-resnet")] = 'T';  // still valid JSON: only the checksum can tell
  dump(catalog, text);
  expect_error(ErrorCode::kChecksum, "catalog.json checksum");
}

TEST_F(BundleTest, BadMagic) {
  const fs::path weights = fs::path(path) / "weights.bin";
  std::string bytes = slurp(weights);
  bytes[0] = 'X';
  dump(weights, bytes);
  expect_error(ErrorCode::kFormat, "magic");
}

TEST_F(BundleTest, WrongSchemaVersion) {
  edit_catalog([](json& c) { c["schema_version"] = kBundleSchemaVersion + 1; });
  expect_error(ErrorCode::kSchemaVersion,
               "schema_version " + std::to_string(kBundleSchemaVersion + 1));
}

TEST_F(BundleTest, OffsetPastEnd) {
  edit_catalog([](json& c) { c["tensors"][3]["offset"] = 1u << 30; });
  expect_error(ErrorCode::kOutOfRange, "outside weights.bin");
}

TEST_F(BundleTest, MisalignedOffsetAndShapeMismatch) {
  edit_catalog([](json& c) { c["tensors"][0]["offset"] = 65; });
  expect_error(ErrorCode::kFormat, "aligned");
  ASSERT_TRUE(writer.write(path).ok());
  edit_catalog([](json& c) { c["tensors"][0]["shape"] = {8, 3, 3, 4}; });
  expect_error(ErrorCode::kFormat, "does not match");
}

TEST_F(BundleTest, BranchReferencingMissingTensor) {
  edit_catalog([](json& c) { c["branches"][0]["nodes"][0]["params"]["weight"] = "ghost"; });
  expect_error(ErrorCode::kInvalidGraph, "ghost");
}

TEST_F(BundleTest, MalformedCatalogTypes) {
  edit_catalog([](json& c) { c["branches"][0]["nodes"] = "oops"; });
  expect_error(ErrorCode::kFormat, "catalog.json");
  ASSERT_TRUE(writer.write(path).ok());
  edit_catalog([](json& c) { c.erase("tensors"); });
  expect_error(ErrorCode::kFormat, "catalog.json");
  ASSERT_TRUE(writer.write(path).ok());
  edit_catalog([](json& c) { c["input"]["shape"] = {1, 3, -8, 8}; });
  expect_error(ErrorCode::kFormat, "input shape");
}

TEST_F(BundleTest, WriterRejectsBadBranchAndDuplicateTensor) {
  Branch bad;
  bad.name = "bad";
  bad.output = "y";
  bad.nodes = {testing::make_node("relu", {"missing"}, "y")};
  EXPECT_EQ(writer.add_branch(bad).code, ErrorCode::kInvalidGraph);
  // costs the reader would refuse are refused when written, not dropped
  std::unique_ptr<Bundle> bundle;
  ASSERT_TRUE(Bundle::open(path, &bundle).ok());
  Branch percent = bundle->branches()[1];
  percent.name = "percent";
  percent.costs_json = R"({"accuracy":87.5})";
  const Status s = writer.add_branch(percent);
  EXPECT_EQ(s.code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message.find("costs.accuracy"), std::string::npos) << s.message;
  percent.costs_json = R"({"accuracy":0.875})";
  EXPECT_TRUE(writer.add_branch(percent).ok());
  EXPECT_EQ(writer.add_f32("fc.b", {5}, std::vector<float>(5)).code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace adascale
