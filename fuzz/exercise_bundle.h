// What every runtime fuzz target asks of a bundle that opened: every branch must infer, and the
// picked one must prepare and run on the reference backend (a trap otherwise). Inputs whose work
// would take long are validated but not run, so each execution stays fast.
#pragma once

#include <cstdint>

#include "runtime/bundle.h"

namespace adascale::fuzz {

void exercise_bundle(const Bundle& bundle, uint8_t pick);

}  // namespace adascale::fuzz
