// The one-line error a branch space is refused with, for the tests of both backbone families.
#pragma once

#include <string>

#include "supernet/branch_space.h"

namespace adascale::testing {

// what BranchSpace::from_config throws for `config` on `base`; "" when it accepts the space
inline std::string branch_space_error(const trainer::SupernetConfig& config,
                                      const trainer::BackboneLayout& base) {
  try {
    trainer::BranchSpace::from_config(config, base);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace adascale::testing
