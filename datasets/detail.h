// internal helpers shared by the dataset readers and the loader; not part of the public api.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace adascale::data::detail {

// splitmix64 finalizer: spreads nearby seeds (epoch 3 vs 4) into unrelated generator states
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline uint64_t hash_seed(uint64_t a, uint64_t b) { return mix64(mix64(a) ^ b); }
inline uint64_t hash_seed(uint64_t a, uint64_t b, uint64_t c) {
  return mix64(hash_seed(a, b) ^ mix64(c));
}

// uniform in [0, bound); std::uniform_int_distribution is implementation-defined, this is not,
// so the same seed gives the same draws with any standard library.
inline uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  if (bound <= 1) return 0;
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;  // reject the biased tail
  uint64_t r;
  do {
    r = rng();
  } while (r >= limit);
  return r % bound;
}

// fisher-yates with uniform_below, for the same reason as above (std::shuffle is not portable)
template <typename T>
void shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(uniform_below(rng, i));
    std::swap(v[i - 1], v[j]);
  }
}

// ---- limits on what a file may claim ------------------------------------------------------------
// Every size a header or an array extent claims is checked against these limits and against what
// the file really holds before anything sized by it is allocated.

// an image height or width (the IDX reader's bound, shared by every reader)
constexpr uint64_t kMaxImageSide = uint64_t{1} << 15;
// channels of one image (HDF5 arrays: the last dimension of N x H x W x C)
constexpr uint64_t kMaxChannels = 64;

// "a x b x c", for messages
std::string join_dims(const std::vector<uint64_t>& dims);

// the product of `dims`, checked: throws DataError "<file>: <field> a x b x c overflows the 64-bit
// size range" when it does not fit in int64_t (so it also fits size_t and ImageShape arithmetic)
uint64_t checked_product(const std::string& file, const std::string& field,
                         const std::vector<uint64_t>& dims);

// "0", "1", ..., n-1: class names for sets that do not carry their own; n is at most
// kMaxUnnamedClasses (throws DataError otherwise)
std::vector<std::string> numbered_class_names(int64_t n);

// whole file into memory; throws DataError naming the file (also for a path that is not a
// regular file, whose size cannot be known before reading)
std::vector<uint8_t> read_file_bytes(const std::string& path);

// the class folders of an image-folder split (sorted, hidden entries skipped), as
// read_image_folder assigns class ids; throws DataError naming the folder
std::vector<std::string> class_folder_names(const std::string& dir);

// the `class_names` attribute of an HDF5 set's `labels` dataset; empty when the file, the dataset
// or the attribute is absent; throws DataError for a malformed attribute
std::vector<std::string> hdf5_class_names(const std::string& path);

}  // namespace adascale::data::detail
