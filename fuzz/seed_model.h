// The bundle every runtime fuzz target starts from: the runtime tests' multi-branch model (f32
// residual, early exit, int8) plus an int8 branch deriving its weights (slice, multiplier,
// quantization at preparation) from float ones, as catalog.json text and weights.bin bytes.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/bundle.h"
#include "tests/runtime_test_util.h"

namespace adascale::fuzz {

struct SeedBundle {
  std::string catalog, weights;
};

inline SeedBundle make_seed_bundle() {
  using adascale::testing::make_node;
  BundleWriter writer;
  testing::build_small_model(&writer);
  Branch derived;
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
  const Status added = writer.add_branch(derived);
  if (!added.ok()) throw std::runtime_error("seed branch: " + added.message);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("adascale_seed_" + std::to_string(::getpid()) + ".bundle");
  const Status written = writer.write(dir.string());
  if (!written.ok()) throw std::runtime_error("seed bundle: " + written.message);
  auto slurp = [](const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  SeedBundle seed{slurp(dir / "catalog.json"), slurp(dir / "weights.bin")};
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return seed;
}

}  // namespace adascale::fuzz
