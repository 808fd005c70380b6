// Structure-aware mutation of catalog.json: the fuzzer's bytes are read as a short program of
// edits to the parsed catalog (retype a value, nest it deeper, repeat or drop array entries, add
// unknown keys, put known names where they do not belong, tweak numbers toward their limits,
// reorder nodes, copy subtrees between places), applied to a valid catalog and dumped again, so
// that after the checksum is recomputed every edit reaches the reader's semantic checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace adascale::fuzz {

// The edited catalog, or the original when the edits make it longer than `max_bytes`.
std::string mutate_catalog(const std::string& catalog, const uint8_t* program, size_t size,
                           size_t max_bytes = 1 << 20);

}  // namespace adascale::fuzz
