// Writes bundle_fuzz seed inputs (flags, catalog length, catalog.json, weights.bin) built from the
// runtime tests' multi-branch model: f32 residual, early exit and int8 branches.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "runtime/bundle.h"
#include "tests/runtime_test_util.h"

namespace fs = std::filesystem;

static std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const fs::path out(argv[1]);
  fs::create_directories(out);
  adascale::BundleWriter writer;
  adascale::testing::build_small_model(&writer);
  const fs::path bundle = out / "seed.bundle.tmp";
  adascale::Status s = writer.write(bundle.string());
  if (!s.ok()) {
    std::fprintf(stderr, "cannot write seed bundle: %s\n", s.message.c_str());
    return 1;
  }
  const std::string catalog = slurp(bundle / "catalog.json");
  const std::string weights = slurp(bundle / "weights.bin");
  fs::remove_all(bundle);
  // One seed per branch (flags select it), checksum repair on.
  for (uint8_t branch = 0; branch < 3; ++branch) {
    const std::string seed =
        adascale::fuzz::encode_input(static_cast<uint8_t>(1 | branch << 1), catalog, weights);
    std::ofstream(out / ("seed_branch" + std::to_string(branch)), std::ios::binary) << seed;
  }
  return 0;
}
