// Int8 2-D convolution (groups == 1) for x86 CPUs with AVX512-VNNI, the per-architecture override
// the XNNPACK backend prefers for int8 conv2d: Debian's XNNPACK has no VNNI int8 kernels, and its
// AVX512 int8 path is slower than its own fp32 path. The arithmetic is the reference kernel's
// (docs/int8-arithmetic.md) bit for bit: activations are shifted to uint8 (x + 128) so vpdpbusd can
// multiply them with the int8 weights, and the shift is folded into the bias per output channel.
//
// The input is first copied into a padded uint8 buffer whose border holds the zero point, so the
// inner loop never tests bounds. Pixels hold the channels rounded up to 4 (one vpdpbusd lane);
// with fewer than 4 channels (a grey or RGB stem) a pixel instead holds its kw horizontal
// neighbours, which turns a 3x3 conv on 1 channel into 3 taps of 4 bytes rather than 9.
#pragma once

#include <pthreadpool.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace adascale {

struct Conv2dInt8Geometry {
  int64_t in_c = 0, out_c = 0, kh = 1, kw = 1, sh = 1, sw = 1, pt = 0, pl = 0, pb = 0, pr = 0;
};

struct Conv2dInt8Quant {
  int32_t in_zero_point = 0, out_zero_point = 0, out_min = -128, out_max = 127;
  float in_scale = 1, out_scale = 1;
};

class Conv2dInt8Vnni {
 public:
  // True when this CPU runs AVX512-VNNI (with AVX512BW/VL) and the build targets x86-64.
  static bool supported();
  // Packs OHWI int8 weights ([out_c][kh][kw][in_c]), int32 bias (may be null) and per-channel
  // weight scales. Returns null when the CPU is not supported.
  static std::unique_ptr<Conv2dInt8Vnni> create(const Conv2dInt8Geometry& geometry,
                                                const Conv2dInt8Quant& quant, const int8_t* weight,
                                                const int32_t* bias, const float* weight_scale);
  // Sizes the padded input buffer for an NHWC input of height x width.
  void setup(int64_t height, int64_t width);
  // x: [batch][height][width][in_c] int8, y: [batch][out_h][out_w][out_c] int8.
  void run(const int8_t* x, int64_t batch, int8_t* y, pthreadpool_t pool);

  int64_t out_height() const { return oh_; }
  int64_t out_width() const { return ow_; }
  bool packs_rows() const { return rows_packed_; }  // the horizontal-neighbour layout above
  size_t buffer_bytes() const { return buffer_.size(); }

 private:
  Conv2dInt8Vnni() = default;
  friend struct Conv2dInt8VnniTiles;

  Conv2dInt8Geometry g_;
  Conv2dInt8Quant q_;
  bool rows_packed_ = false;
  int64_t depth_ = 0;   // bytes per buffer pixel, a multiple of 4
  int64_t taps_ = 0;    // kh * kw, or kh when rows are packed
  int64_t blocks_ = 0;  // output channel blocks of 16
  int64_t h_ = 0, w_ = 0, oh_ = 0, ow_ = 0;
  int64_t buffer_width_ = 0;         // pixels per buffer row
  int64_t column_step_ = 0;          // buffer pixels between horizontally adjacent outputs
  std::vector<int8_t> packed_;       // [blocks][taps][depth / 4][16][4]
  std::vector<int32_t> bias_;        // [blocks * 16]: bias - (in_zp + 128) * sum(w)
  std::vector<float> multiplier_;    // [blocks * 16]: in_scale * w_scale / out_scale
  std::vector<int64_t> tap_offset_;  // byte offset of each tap from a pixel's first tap
  std::vector<uint8_t> buffer_;      // [rows][buffer_width][depth] uint8
  std::vector<uint8_t> row_;         // one padded input row (packed rows only)
  int8_t* y_ = nullptr;              // output of the image being computed
};

}  // namespace adascale
