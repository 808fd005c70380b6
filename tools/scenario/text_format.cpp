#include "tools/scenario/text_format.h"

#include <cstdarg>
#include <cstdio>

namespace adascale::scenario {

std::string format(const char* fmt, ...) {
  char buffer[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buffer, sizeof(buffer), fmt, args);
  va_end(args);
  return buffer;
}

}  // namespace adascale::scenario
