// libFuzzer target: structure-aware mutations of a valid bundle's catalog (catalog_mutator.h),
// checksum recomputed, opened from memory; a bundle that opens must run (exercise_bundle.h).
// Byte 0 picks the branch that runs, the rest is the mutation program.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz/catalog_mutator.h"
#include "fuzz/exercise_bundle.h"
#include "fuzz/seed_model.h"

namespace adascale::fuzz {

int run_catalog_input(const uint8_t* data, size_t size) {
  static const SeedBundle seed = make_seed_bundle();
  if (size < 1) return 0;
  std::string catalog = mutate_catalog(seed.catalog, data + 1, size - 1);
  std::vector<uint8_t> weights(seed.weights.begin(), seed.weights.end());
  const uint32_t crc = crc32(catalog.data(), catalog.size());
  std::memcpy(&weights[32], &crc, 4);
  std::unique_ptr<Bundle> bundle;
  if (!Bundle::open_from_memory(std::move(catalog), std::move(weights), &bundle).ok()) return 0;
  exercise_bundle(*bundle, data[0]);
  return 0;
}

}  // namespace adascale::fuzz

#ifndef ADASCALE_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return adascale::fuzz::run_catalog_input(data, size);
}
#endif
