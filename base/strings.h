// Comma-separated lists, as configs and command lines write them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace adascale::base {

// "a, b,c" -> {"a", "b", "c"}, items trimmed of spaces and tabs (empty items kept, so callers
// can refuse them by name)
std::vector<std::string> split_list(const std::string& text);
// "1,2,3" -> {1, 2, 3}; throws ConfigError naming `key` on anything that is not an integer
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& key);
std::string join_int_list(const std::vector<int64_t>& values);

}  // namespace adascale::base
