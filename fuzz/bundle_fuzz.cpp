// libFuzzer target for the bundle reader, mutating bytes. Input layout: byte 0 flags, bytes 1..4
// the catalog.json length (u32 little-endian, clamped to what is left), then catalog.json, then
// weights.bin. flags bit 0 rewrites the header's catalog CRC so mutated catalogs get past the
// checksum and reach the JSON and graph validation; bits 1..7 pick the branch that is run.
// (catalog_fuzz mutates the parsed catalog instead, which reaches deeper.)
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz/exercise_bundle.h"
#include "runtime/bundle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace adascale;
  if (size < 5) return 0;
  const uint8_t flags = data[0];
  const uint32_t catalog_bytes = uint32_t{data[1]} | uint32_t{data[2]} << 8 |
                                 uint32_t{data[3]} << 16 | uint32_t{data[4]} << 24;
  const size_t left = size - 5;
  const size_t n = std::min<size_t>(catalog_bytes, left);
  std::string catalog(reinterpret_cast<const char*>(data + 5), n);
  std::vector<uint8_t> weights(data + 5 + n, data + size);
  if ((flags & 1) && weights.size() >= kWeightsHeaderBytes) {
    const uint32_t crc = crc32(catalog.data(), catalog.size());
    std::memcpy(&weights[32], &crc, 4);
  }
  std::unique_ptr<Bundle> bundle;
  if (!Bundle::open_from_memory(std::move(catalog), std::move(weights), &bundle).ok()) return 0;
  fuzz::exercise_bundle(*bundle, static_cast<uint8_t>(flags >> 1));
  return 0;
}
