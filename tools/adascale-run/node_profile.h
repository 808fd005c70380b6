// --profile: where the time of one inference goes, per node and per layer type.
#pragma once

#include <cstdint>
#include <string>

#include "tools/adascale-run/runtime_handle.h"

namespace adascale::run_cli {

// Runs the selected branch `runs` times on one input and prints the median time of every node,
// then of every layer type and output precision. Throws Failure.
void print_profile(Runtime& rt, const std::string& branch, int64_t runs, adascale_backend backend,
                   int threads);

}  // namespace adascale::run_cli
