// Small helpers shared by the multi-branch network, its branch space and its training phases
// (internal to supernet/).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "base/durable_file.h"
#include "base/error.h"
#include "base/strings.h"
#include "compress/conv_variants.h"
#include "compress/mac_counter.h"
#include "supernet/operator.h"

namespace adascale::trainer::supernet_detail {

using base::split_list;

inline double parse_number(const std::string& key, const std::string& item) {
  char* end = nullptr;
  const double v = std::strtod(item.c_str(), &end);
  if (item.empty() || *end != '\0' || !std::isfinite(v))
    throw ConfigError("config key '" + key + "': '" + item + "' is not a number");
  return v;
}

inline std::string fixed2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// channels inside an exit block, as a fraction of the exit's: half keeps a bundle of every branch
// within 1.5x the largest branch's bytes
constexpr double kExitBlockMid = 0.5;

inline int64_t scaled(int64_t channels, double width) {
  return std::max<int64_t>(1, std::lround(channels * width));
}

inline std::string stage_list(const std::vector<int64_t>& stages) {
  std::string s;
  for (size_t i = 0; i < stages.size(); ++i) s += (i ? "/" : "") + std::to_string(stages[i] + 1);
  return s;
}

inline std::string block_prefix(size_t s, size_t b) {
  return "stages." + std::to_string(s) + "." + std::to_string(b);
}

inline bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// a fire slot squeezes to a quarter of its output channels, counted at the branch's own width
inline int64_t fire_squeeze(int64_t out) {
  return compress::fire_squeeze_channels(out, kFireDefaultSqueeze);
}

// a convolution in the memory orders that suit oneDNN and the BatchNorm after it
inline torch::Tensor conv(const torch::Tensor& x, const torch::Tensor& w, torch::IntArrayRef stride,
                          torch::IntArrayRef padding, int64_t groups = 1) {
  return compress::conv_output(
      torch::conv2d(compress::conv_input(x), w, {}, stride, padding, 1, groups));
}

inline void write_text_atomic(const std::string& path, const std::string& text) {
  std::string error;
  if (!base::write_file_atomic(path, text.data(), text.size(), &error)) throw ConfigError(error);
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace adascale::trainer::supernet_detail
