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

// "0", "1", ..., n-1: class names for sets that do not carry their own
std::vector<std::string> numbered_class_names(int64_t n);

// whole file into memory; throws DataError naming the file
std::vector<uint8_t> read_file_bytes(const std::string& path);

}  // namespace adascale::data::detail
