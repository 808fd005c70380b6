// Failure: every user-facing error of adascale-run that is not a usage mistake (a bundle that
// does not open, a damaged input file). main prints it on one line and exits with status 1.
#pragma once

#include <stdexcept>

namespace adascale::run_cli {

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace adascale::run_cli
