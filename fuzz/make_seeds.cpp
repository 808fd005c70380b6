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
  using adascale::Attrs;
  using adascale::testing::make_node;
  adascale::BundleWriter writer;
  adascale::testing::build_small_model(&writer);
  adascale::Branch derived;
  derived.name = "int8-derived";
  derived.output = "logits";
  derived.nodes = {
      make_node("quantize", {"input"}, "q", {},
                Attrs().set("out_scale", 0.03).set("out_zero_point", 2.0)),
      make_node("conv2d", {"q"}, "c1",
                {{"weight", "block.w"}, {"weight_mul", "bn.scale"}, {"bias", "stem.b"}},
                Attrs()
                    .set("kernel", std::vector<int64_t>{3, 3})
                    .set("pad", std::vector<int64_t>{1, 1, 1, 1})
                    .set("activation", "relu")
                    .set("weight_slice", std::vector<int64_t>{8, 3})
                    .set("weight_quantize", "int8")
                    .set("bias_input_scale", 0.03)
                    .set("out_scale", 0.05)
                    .set("out_zero_point", -128.0)),
      make_node("global_avg_pool", {"c1"}, "gap", {},
                Attrs().set("out_scale", 0.02).set("out_zero_point", -100.0)),
      make_node("dequantize", {"gap"}, "dq"),
      make_node("flatten", {"dq"}, "flat"),
      make_node("fully_connected", {"flat"}, "logits", {{"weight", "fc.w"}, {"bias", "fc.b"}}),
  };
  adascale::Status added = writer.add_branch(derived);
  if (!added.ok()) {
    std::fprintf(stderr, "cannot add the derived seed branch: %s\n", added.message.c_str());
    return 1;
  }
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
  for (uint8_t branch = 0; branch < 4; ++branch) {
    const std::string seed =
        adascale::fuzz::encode_input(static_cast<uint8_t>(1 | branch << 1), catalog, weights);
    std::ofstream(out / ("seed_branch" + std::to_string(branch)), std::ios::binary) << seed;
  }
  return 0;
}
