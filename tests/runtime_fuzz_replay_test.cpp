// Bundle::open_from_memory, and a replay of the fuzz harness (fuzz/bundle_fuzz.cpp, compiled in
// here with the normal toolchain) over valid seeds, simple corruptions and every input kept in
// fuzz/regressions/, so inputs that once crashed stay covered without clang or libFuzzer.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/catalog_mutator.h"
#include "fuzz/fuzz_input.h"
#include "runtime/bundle.h"
#include "tests/runtime_test_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
namespace adascale::fuzz {
int run_catalog_input(const uint8_t* data, size_t size);  // fuzz/catalog_fuzz.cpp
}

namespace adascale {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct Parts {
  std::string catalog, weights;
};

const Parts& small_model_parts() {
  static const Parts parts = [] {
    BundleWriter writer;
    testing::build_small_model(&writer);
    const std::string path = testing::temp_path("fuzz_replay.bundle");
    EXPECT_TRUE(writer.write(path).ok());
    return Parts{slurp(fs::path(path) / "catalog.json"), slurp(fs::path(path) / "weights.bin")};
  }();
  return parts;
}

std::vector<uint8_t> bytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

void replay(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

TEST(RuntimeBundleMemory, OpensLikeTheFileAndRejectsCorruption) {
  const Parts& p = small_model_parts();
  std::unique_ptr<Bundle> bundle;
  ASSERT_TRUE(Bundle::open_from_memory(p.catalog, bytes(p.weights), &bundle).ok());
  ASSERT_EQ(bundle->branches().size(), 3u);
  EXPECT_EQ(bundle->branches()[0].name, "full");
  EXPECT_EQ(bundle->classes().size(), 5u);
  EXPECT_EQ(bundle->weights_file_bytes(), p.weights.size());

  std::string catalog = p.catalog;
  catalog[catalog.size() / 2] ^= 1;
  EXPECT_EQ(Bundle::open_from_memory(catalog, bytes(p.weights), &bundle).code,
            ErrorCode::kChecksum);
  std::vector<uint8_t> weights = bytes(p.weights);
  weights.resize(40);
  EXPECT_EQ(Bundle::open_from_memory(p.catalog, weights, &bundle).code, ErrorCode::kFormat);
  weights = bytes(p.weights);
  weights[kWeightsHeaderBytes] ^= 1;  // first byte of the first tensor
  EXPECT_EQ(Bundle::open_from_memory(p.catalog, weights, &bundle).code, ErrorCode::kChecksum);
  EXPECT_FALSE(Bundle::open_from_memory("", {}, &bundle).ok());
}

TEST(RuntimeFuzzReplay, SeedsAndTruncationsRunCleanly) {
  const Parts& p = small_model_parts();
  for (uint8_t branch = 0; branch < 3; ++branch)
    replay(fuzz::encode_input(static_cast<uint8_t>(1 | branch << 1), p.catalog, p.weights));
  const std::string seed = fuzz::encode_input(1, p.catalog, p.weights);
  for (size_t cut = 0; cut < seed.size(); cut += 97) replay(seed.substr(0, cut));
}

TEST(RuntimeFuzzReplay, RegressionInputsRunCleanly) {
  const fs::path dir = fs::path(ADASCALE_SOURCE_DIR) / "fuzz" / "regressions";
  size_t count = 0;
  if (fs::is_directory(dir))
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_regular_file() || entry.path().extension() == ".md") continue;
      SCOPED_TRACE(entry.path().string());
      replay(slurp(entry.path()));
      ++count;
    }
  RecordProperty("regression_inputs", static_cast<int>(count));
}

TEST(RuntimeFuzzReplay, RegressionInputsOfSilentAcceptanceAreRefused) {
  // decoded as bundle_fuzz does (flags, length, catalog, weights; checksum repaired)
  const fs::path dir = fs::path(ADASCALE_SOURCE_DIR) / "fuzz" / "regressions";
  std::ifstream list(dir / "refused.txt");
  std::string name;
  size_t count = 0;
  while (std::getline(list, name)) {
    if (name.empty()) continue;
    SCOPED_TRACE(name);
    const std::string input = slurp(dir / name);
    ASSERT_GE(input.size(), 5u);
    uint32_t length = 0;
    for (int i = 0; i < 4; ++i) length |= uint32_t{static_cast<uint8_t>(input[1 + i])} << (8 * i);
    ASSERT_LE(length, input.size() - 5);
    const std::string catalog = input.substr(5, length);
    std::vector<uint8_t> weights = bytes(input.substr(5 + length));
    ASSERT_GE(weights.size(), kWeightsHeaderBytes);
    const uint32_t crc = crc32(catalog.data(), catalog.size());
    std::memcpy(&weights[32], &crc, 4);
    std::unique_ptr<Bundle> bundle;
    const Status s = Bundle::open_from_memory(catalog, weights, &bundle);
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(s.message.find('\n'), std::string::npos) << s.message;
    ++count;
  }
  EXPECT_GE(count, 11u);
}

TEST(RuntimeFuzzReplay, CatalogEditsRunCleanly) {
  // the structure-aware harness over seeded random edit programs, with the normal toolchain:
  // every edited catalog either is refused with a status or opens and runs
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> byte(0, 255), length(1, 64);
  for (int i = 0; i < 300; ++i) {
    std::vector<uint8_t> program(static_cast<size_t>(length(rng)));
    for (uint8_t& b : program) b = static_cast<uint8_t>(byte(rng));
    fuzz::run_catalog_input(program.data(), program.size());
  }
  // and the edits do change catalogs (a mutator that always failed would test nothing)
  const Parts& p = small_model_parts();
  const uint8_t retype_root_model[] = {1, 0, 0, 4};
  EXPECT_NE(fuzz::mutate_catalog(p.catalog, retype_root_model, sizeof(retype_root_model)),
            p.catalog);
}

}  // namespace
}  // namespace adascale
