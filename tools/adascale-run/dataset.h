// What the input readers (idx_input.h, png_input.h) produce: images in the bundle's input shape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace adascale::run_cli {

// No deflate stream expands its input more than this: what a compressed file's size can hold.
constexpr uint64_t kMaxDeflateRatio = 1032;

// The bundle's input, one image (batch 1).
struct ImageShape {
  int64_t channels = 0, height = 0, width = 0;
  size_t floats() const { return static_cast<size_t>(channels * height * width); }
};

// Images as NCHW floats in [0, 1]; no labels means an unlabelled set.
struct Dataset {
  std::vector<float> pixels;
  std::vector<int64_t> labels;
  size_t count = 0;
  bool labelled() const { return !labels.empty(); }
};

}  // namespace adascale::run_cli
