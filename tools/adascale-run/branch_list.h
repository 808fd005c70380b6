// --list: the bundle's branches with the numbers of their catalog costs, one column per number
// (nested keys joined with '.', "latency_ms.median").
#pragma once

#include "tools/adascale-run/runtime_handle.h"

namespace adascale::run_cli {

void print_list(const Runtime& rt);

}  // namespace adascale::run_cli
