// What a checkpoint's integrity checks cover (format 2, checkpoint.h): the CRC-32 of a dataset's
// bytes, and the canonical digest of the root attributes plus the manifest of datasets that the
// root checksum is taken over. Internal to trainer/checkpoint.cpp.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace adascale::trainer::checkpoint_digest {

inline uint32_t crc32_of(const void* data, size_t bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (bytes > 0) {
    const size_t n = std::min<size_t>(bytes, size_t{1} << 30);
    crc = crc32(crc, p, static_cast<uInt>(n));
    p += n;
    bytes -= n;
  }
  return static_cast<uint32_t>(crc);
}

// what the attributes checksum covers of one dataset
struct ManifestEntry {
  char type = '?';  // f: float32, i: int64, d: float64, u: uint8
  std::vector<uint64_t> dims;
  uint32_t crc = 0;
};
using Manifest = std::map<std::string, ManifestEntry>;  // by path, e.g. "model/fc.weight"

// a canonical byte string of everything the root checksum covers, length-prefixed so that no two
// different checkpoints serialize alike
class Digest {
 public:
  void u64(uint64_t v) { bytes_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void text(const std::string& s) {
    u64(s.size());
    bytes_ += s;
  }
  void ints(const std::vector<int64_t>& v) {
    u64(v.size());
    for (auto x : v) u64(static_cast<uint64_t>(x));
  }
  void reals(const std::vector<double>& v) {
    u64(v.size());
    for (double x : v) {
      uint64_t bits = 0;
      std::memcpy(&bits, &x, sizeof bits);
      u64(bits);
    }
  }
  void manifest(const Manifest& m) {
    u64(m.size());
    for (const auto& [name, e] : m) {
      text(name);
      text(std::string(1, e.type));
      u64(e.dims.size());
      for (auto d : e.dims) u64(d);
      u64(e.crc);
    }
  }
  uint32_t crc() const { return crc32_of(bytes_.data(), bytes_.size()); }

 private:
  std::string bytes_;
};

// the attributes as stored (text up to its first NUL, float vectors as the doubles written)
struct Header {
  std::vector<int64_t> format_version, epoch, input_shape;
  std::string config, architecture, spec, lineage, class_names, columns;
  std::vector<double> normalize_mean, normalize_std, test_metrics;

  uint32_t crc(const Manifest& manifest) const {
    Digest d;
    d.ints(format_version);
    d.ints(epoch);
    d.text(config);
    d.text(architecture);
    d.text(spec);
    d.text(lineage);
    d.ints(input_shape);
    d.text(class_names);
    d.reals(normalize_mean);
    d.reals(normalize_std);
    d.reals(test_metrics);
    d.text(columns);
    d.manifest(manifest);
    return d.crc();
  }
};

}  // namespace adascale::trainer::checkpoint_digest
