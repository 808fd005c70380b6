// Writes bundle_fuzz seed inputs (flags, catalog length, catalog.json, weights.bin) built from the
// runtime tests' multi-branch model: f32 residual, early exit and int8 branches, plus an int8
// branch deriving its weights (slice, multiplier, quantization at preparation) from float ones.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "fuzz/seed_model.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const fs::path out(argv[1]);
  fs::create_directories(out);
  adascale::fuzz::SeedBundle parts;
  try {
    parts = adascale::fuzz::make_seed_bundle();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  const std::string& catalog = parts.catalog;
  const std::string& weights = parts.weights;
  // One seed per branch (flags select it), checksum repair on.
  for (uint8_t branch = 0; branch < 4; ++branch) {
    const std::string seed =
        adascale::fuzz::encode_input(static_cast<uint8_t>(1 | branch << 1), catalog, weights);
    std::ofstream(out / ("seed_branch" + std::to_string(branch)), std::ios::binary) << seed;
  }
  return 0;
}
