// Structure-aware inputs for data_fuzz (the server-side data set and checkpoint readers).
//
// Each generator builds a small valid file and then edits its parsed structure (HDF5 extents,
// element types, layouts, attributes and their types, links, checksums) instead of its bytes:
// random bytes almost never get past HDF5's own metadata checks or the checkpoint checksums,
// while structural edits reach the readers' semantic checks. Here: the seeded generator, the
// parsed form of an IDX file, and the HDF5 generators (data_mutations.cpp); the IDX and CIFAR
// edits (flat byte formats) are in data_fuzz.cpp.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace adascale::fuzz {

// the few draws the mutators need, from one seeded generator (the same seed gives the same input)
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  uint64_t below(uint64_t n) { return n <= 1 ? 0 : g_() % n; }  // bias irrelevant here
  int64_t range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }
  bool chance(int percent) { return below(100) < static_cast<uint64_t>(percent); }
  uint64_t bits() { return g_(); }
  // how many edits to make: 1..max_edits, none for 0
  int edits(int max_edits) { return max_edits <= 0 ? 0 : static_cast<int>(range(1, max_edits)); }
  std::string bytes(size_t n, uint64_t bound = 256) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(below(bound));
    return s;
  }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }

 private:
  std::mt19937_64 g_;
};

// prefix0, prefix1, ...: class names
inline std::vector<std::string> numbered(const std::string& prefix, int64_t n) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

// writes (or replaces) a whole file
inline void put_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// an IDX file as parsed: 2 zero bytes, type, rank, big-endian u32 dims, body; optionally gzipped
struct Idx {
  uint8_t zero[2] = {0, 0};
  uint8_t type = 0x08, rank = 0;
  std::vector<uint32_t> dims;
  std::string body;
  bool gz = false, gz_plain = false;  // gz_plain: a .gz name over plain bytes
  int64_t gz_cut = 0;                 // bytes cut off the end of the gzip stream

  std::string bytes() const {
    std::string s{char(zero[0]), char(zero[1]), char(type), char(rank)};
    for (uint32_t d : dims)
      for (int shift = 24; shift >= 0; shift -= 8) s += char((d >> shift) & 0xff);
    return s + body;
  }
  std::string write(const std::string& stem) const {
    const std::string path = stem + (gz ? ".gz" : "");
    if (!gz || gz_plain) {
      put_file(path, bytes());
      return path;
    }
    const std::string raw = bytes();
    gzFile out = gzopen(path.c_str(), "wb");
    if (!raw.empty()) gzwrite(out, raw.data(), static_cast<unsigned>(raw.size()));
    gzclose(out);
    const uintmax_t size = std::filesystem::file_size(path);
    std::filesystem::resize_file(path, size - std::min<uintmax_t>(size, uintmax_t(gz_cut)));
    return path;
  }
};

// values that sit on the limits of 32-bit size fields (0, 1, 2^31, 2^32-1, ...)
inline uint32_t interesting_u32(Rng& r) {
  static const std::vector<uint32_t> kValues = {
      0,     1,     2,     3,     27,      28,          29,          255,         256,        32767,
      32768, 32769, 65535, 65536, 5000000, 0x7fffffffu, 0x80000000u, 0xfffffffeu, 0xffffffffu};
  return r.chance(10) ? static_cast<uint32_t>(r.bits()) : r.pick(kValues);
}

// One HDF5 image set as read_hdf5 reads it, mutated: written to `path`. Returns the edits applied
// (for the report). `max_edits` bounds the number of edits (0: the valid set, unchanged).
std::vector<std::string> make_hdf5_set(Rng& r, const std::string& path, int max_edits);

// How a mutated checkpoint is finished so that the edits are not simply refused by a checksum.
enum class CheckpointSeal {
  kDowngrade,  // format_version 1 and every checksum deleted (format 1 is read unverified)
  kFormat2,    // format 2 as edited: replaced datasets carry their crc32, the root checksum is
               // stale (the semantic checks run before it is compared)
};

// Edits a checkpoint written by write_checkpoint in place (1..max_edits edits, none for 0),
// then seals it as `seal` says. Returns the edits applied.
std::vector<std::string> mutate_checkpoint(Rng& r, const std::string& path, int max_edits,
                                           CheckpointSeal seal);

}  // namespace adascale::fuzz
