#include "runtime/arch/conv2d_int8_vnni.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__)
#include <cpuinfo.h>
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
// gcc 12's avx512 headers leave "undefined" vectors uninitialised on purpose
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define ADASCALE_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#endif

namespace adascale {

namespace {
constexpr int64_t kBlock = 16;  // output channels per zmm accumulator
constexpr int kRows = 8;        // output pixels per tile
int64_t round4(int64_t v) { return (v + 3) / 4 * 4; }
}  // namespace

bool Conv2dInt8Vnni::supported() {
#if defined(__x86_64__)
  static const bool ok = cpuinfo_initialize() && cpuinfo_has_x86_avx512f() &&
                         cpuinfo_has_x86_avx512bw() && cpuinfo_has_x86_avx512vl() &&
                         cpuinfo_has_x86_avx512vnni();
  return ok;
#else
  return false;
#endif
}

std::unique_ptr<Conv2dInt8Vnni> Conv2dInt8Vnni::create(const Conv2dInt8Geometry& geometry,
                                                       const Conv2dInt8Quant& quant,
                                                       const int8_t* weight, const int32_t* bias,
                                                       const float* weight_scale) {
  if (!supported()) return nullptr;
  std::unique_ptr<Conv2dInt8Vnni> conv(new Conv2dInt8Vnni());
  Conv2dInt8Vnni& c = *conv;
  const Conv2dInt8Geometry& g = geometry;
  c.g_ = g;
  c.q_ = quant;
  // packing kw neighbours pays only when channel padding would waste lanes
  c.rows_packed_ = g.in_c < 4 && round4(g.kw * g.in_c) < g.kw * round4(g.in_c);
  c.depth_ = c.rows_packed_ ? round4(g.kw * g.in_c) : round4(g.in_c);
  c.taps_ = c.rows_packed_ ? g.kh : g.kh * g.kw;
  c.blocks_ = (g.out_c + kBlock - 1) / kBlock;
  c.packed_.assign(static_cast<size_t>(c.blocks_ * c.taps_ * c.depth_ * kBlock), 0);
  c.bias_.assign(static_cast<size_t>(c.blocks_ * kBlock), 0);
  c.multiplier_.assign(static_cast<size_t>(c.blocks_ * kBlock), 0.0f);
  const int32_t shifted_zero = quant.in_zero_point + 128;
  for (int64_t o = 0; o < g.out_c; ++o) {
    const int64_t block = o / kBlock, lane = o % kBlock;
    int64_t sum = 0;
    for (int64_t ky = 0; ky < g.kh; ++ky)
      for (int64_t kx = 0; kx < g.kw; ++kx)
        for (int64_t i = 0; i < g.in_c; ++i) {
          const int8_t w = weight[((o * g.kh + ky) * g.kw + kx) * g.in_c + i];
          sum += w;
          const int64_t tap = c.rows_packed_ ? ky : ky * g.kw + kx;
          const int64_t k = c.rows_packed_ ? kx * g.in_c + i : i;  // byte within the pixel
          // [block][tap][k / 4][lane][k % 4]: one 64-byte row per four bytes of a pixel
          const int64_t at =
              ((block * c.taps_ + tap) * (c.depth_ / 4) + k / 4) * (kBlock * 4) + lane * 4 + k % 4;
          c.packed_[static_cast<size_t>(at)] = w;
        }
    // sum((x + 128) * w) - (zp + 128) * sum(w) = sum((x - zp) * w), wrapping like the int32
    // accumulator it feeds
    const int64_t corrected = (bias ? bias[o] : 0) - int64_t{shifted_zero} * sum;
    c.bias_[static_cast<size_t>(o)] = static_cast<int32_t>(static_cast<uint32_t>(corrected));
    c.multiplier_[static_cast<size_t>(o)] = quant.in_scale * weight_scale[o] / quant.out_scale;
  }
  return conv;
}

void Conv2dInt8Vnni::setup(int64_t height, int64_t width) {
  if (height == h_ && width == w_ && !buffer_.empty()) return;
  h_ = height;
  w_ = width;
  const int64_t hp = height + g_.pt + g_.pb, wp = width + g_.pl + g_.pr;
  // as the op's shape inference: no output where the padded input is smaller than the kernel
  oh_ = hp >= g_.kh ? (hp - g_.kh) / g_.sh + 1 : 0;
  ow_ = wp >= g_.kw ? (wp - g_.kw) / g_.sw + 1 : 0;
  buffer_width_ = rows_packed_ ? ow_ : wp;
  column_step_ = rows_packed_ ? 1 : g_.sw;
  // the border (and bytes past the channels) never changes: padding is the zero point, so it
  // adds nothing; the bytes past the channels meet zero weights
  buffer_.assign(static_cast<size_t>(hp * buffer_width_ * depth_),
                 static_cast<uint8_t>(q_.in_zero_point + 128));
  // packed rows gather from one padded input row; the slack covers the last pixel's over-read
  row_.assign(rows_packed_ ? static_cast<size_t>(wp * g_.in_c + depth_) : 0,
              static_cast<uint8_t>(q_.in_zero_point + 128));
  tap_offset_.clear();
  for (int64_t ky = 0; ky < g_.kh; ++ky)
    for (int64_t kx = 0; kx < (rows_packed_ ? 1 : g_.kw); ++kx)
      tap_offset_.push_back((ky * buffer_width_ + kx) * depth_);
}

#if defined(__x86_64__)
// acc += a (uint8) . w (int8) per 32-bit lane. In inline assembly because gcc 12 copies every
// accumulator around the intrinsic (it is non-destructive, the instruction is not).
ADASCALE_VNNI_TARGET inline void dot4(__m512i& acc, __m512i a, __m512i w) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(w));
}

struct Conv2dInt8VnniTiles {
  // Computes output pixels [first, first + Rows) of the current image for every channel block.
  template <int Rows>
  ADASCALE_VNNI_TARGET static void tile(const Conv2dInt8Vnni& c, int64_t first) {
    const uint8_t* base[Rows];
    int64_t oy = first / c.ow_, ox = first % c.ow_;  // one division per tile, not per pixel
    for (int r = 0; r < Rows; ++r) {
      base[r] =
          c.buffer_.data() + (oy * c.g_.sh * c.buffer_width_ + ox * c.column_step_) * c.depth_;
      if (++ox == c.ow_) ox = 0, ++oy;
    }
    const int64_t groups = c.depth_ / 4;
    const __m512 lo = _mm512_set1_ps(static_cast<float>(c.q_.out_min - c.q_.out_zero_point));
    const __m512 hi = _mm512_set1_ps(static_cast<float>(c.q_.out_max - c.q_.out_zero_point));
    const __m512i zero_point = _mm512_set1_epi32(c.q_.out_zero_point);
    const int8_t* w = c.packed_.data();
    for (int64_t b = 0; b < c.blocks_; ++b) {
      __m512i acc[Rows];
      const __m512i bias = _mm512_loadu_si512(c.bias_.data() + b * kBlock);
      for (int r = 0; r < Rows; ++r) acc[r] = bias;
      for (int64_t t = 0; t < c.taps_; ++t) {
        const int64_t offset = c.tap_offset_[static_cast<size_t>(t)];
        for (int64_t q = 0; q < groups; ++q, w += 4 * kBlock) {
          const __m512i weights = _mm512_loadu_si512(w);
          for (int r = 0; r < Rows; ++r) {
            int32_t four;
            std::memcpy(&four, base[r] + offset + 4 * q, 4);
            dot4(acc[r], _mm512_set1_epi32(four), weights);
          }
        }
      }
      // requantize exactly as the reference: float(acc) * m, clamp, round half even, + zp
      const __m512 m = _mm512_loadu_ps(c.multiplier_.data() + b * kBlock);
      const int64_t lanes = std::min<int64_t>(kBlock, c.g_.out_c - b * kBlock);
      const __mmask16 mask = static_cast<__mmask16>((1u << lanes) - 1u);
      for (int r = 0; r < Rows; ++r) {
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r]), m);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zero_point);
        _mm_mask_storeu_epi8(c.y_ + (first + r) * c.g_.out_c + b * kBlock, mask,
                             _mm512_cvtepi32_epi8(q));
      }
    }
  }

  // Copies one image into the buffer's interior rows as uint8 (x + 128, i.e. x ^ 0x80).
  ADASCALE_VNNI_TARGET static void fill(Conv2dInt8Vnni& c, const int8_t* x) {
    const Conv2dInt8Geometry& g = c.g_;
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int64_t yy = 0; yy < c.h_; ++yy) {
      const int8_t* src = x + yy * c.w_ * g.in_c;
      uint8_t* dst = c.buffer_.data() + (yy + g.pt) * c.buffer_width_ * c.depth_;
      if (c.rows_packed_) {
        // the padded input row first, then pixel ox = the depth bytes from column ox * sw
        // (bytes past kw * in_c meet zero weights, so whatever follows is harmless)
        uint8_t* row = c.row_.data();
        for (int64_t i = 0; i < c.w_ * g.in_c; ++i)
          row[g.pl * g.in_c + i] = static_cast<uint8_t>(src[i]) ^ 0x80u;
        for (int64_t ox = 0; ox < c.ow_; ++ox)
          for (int64_t k = 0; k < c.depth_; k += 4)
            std::memcpy(dst + ox * c.depth_ + k, row + ox * g.sw * g.in_c + k, 4);
        continue;
      }
      dst += g.pl * c.depth_;
      if (c.depth_ != g.in_c) {  // keep the bytes past the channels as they are
        for (int64_t xx = 0; xx < c.w_; ++xx)
          for (int64_t i = 0; i < g.in_c; ++i)
            dst[xx * c.depth_ + i] = static_cast<uint8_t>(src[xx * g.in_c + i]) ^ 0x80u;
        continue;
      }
      const int64_t bytes = c.w_ * g.in_c;
      int64_t i = 0;
      for (; i + 64 <= bytes; i += 64)
        _mm512_storeu_si512(dst + i, _mm512_xor_si512(_mm512_loadu_si512(src + i), flip));
      if (i < bytes) {
        const __mmask64 tail = ~0ull >> (64 - (bytes - i));
        _mm512_mask_storeu_epi8(dst + i, tail,
                                _mm512_xor_si512(_mm512_maskz_loadu_epi8(tail, src + i), flip));
      }
    }
  }

  static void run_tile(void* context, size_t index) {
    const Conv2dInt8Vnni& c = *static_cast<const Conv2dInt8Vnni*>(context);
    const int64_t first = static_cast<int64_t>(index) * kRows;
    switch (std::min<int64_t>(kRows, c.oh_ * c.ow_ - first)) {
      case 8:
        return tile<8>(c, first);
      case 7:
        return tile<7>(c, first);
      case 6:
        return tile<6>(c, first);
      case 5:
        return tile<5>(c, first);
      case 4:
        return tile<4>(c, first);
      case 3:
        return tile<3>(c, first);
      case 2:
        return tile<2>(c, first);
      default:
        return tile<1>(c, first);
    }
  }
};
#endif

void Conv2dInt8Vnni::run(const int8_t* x, int64_t batch, int8_t* y, pthreadpool_t pool) {
#if defined(__x86_64__)
  const int64_t pixels = oh_ * ow_;
  if (pixels <= 0) return;
  const size_t tiles = static_cast<size_t>((pixels + kRows - 1) / kRows);
  for (int64_t n = 0; n < batch; ++n) {
    Conv2dInt8VnniTiles::fill(*this, x + n * h_ * w_ * g_.in_c);
    y_ = y + n * pixels * g_.out_c;
    if (pool)
      pthreadpool_parallelize_1d(pool, &Conv2dInt8VnniTiles::run_tile, this, tiles, 0);
    else
      for (size_t i = 0; i < tiles; ++i) Conv2dInt8VnniTiles::run_tile(this, i);
  }
#else
  (void)x, (void)batch, (void)y, (void)pool;
#endif
}

}  // namespace adascale
