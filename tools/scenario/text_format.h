// printf-style formatting into a std::string, for the replayer's tables, CSV and SVG.
#pragma once

#include <string>

namespace adascale::scenario {

// At most 511 characters (longer output is cut): one table cell or one SVG element.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace adascale::scenario
