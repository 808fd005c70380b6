// bundle_fuzz input encoding, shared by the seed generator and the replay test:
// byte 0 flags, u32 little-endian catalog length, catalog.json bytes, weights.bin bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace adascale::fuzz {

// flags bit 0: repair the header's catalog CRC; bits 1..7: index of the branch to run.
inline std::string encode_input(uint8_t flags, const std::string& catalog,
                                const std::string& weights) {
  std::string out(1, static_cast<char>(flags));
  const uint32_t n = static_cast<uint32_t>(catalog.size());
  char le[4];
  for (int i = 0; i < 4; ++i) le[i] = static_cast<char>(n >> (8 * i));
  out.append(le, 4);
  return out + catalog + weights;
}

}  // namespace adascale::fuzz
