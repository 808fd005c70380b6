// ConfigError: a mistake in what the user asked for (a config key, a command-line option, an
// operator list, a file that is not what it claims), as opposed to a bug or a failing machine.
// Its message is one line that names the culprit; the programs print it and exit non-zero.
// Defined here so every library, the runtime's tools included, throws the same type.
#pragma once

#include <stdexcept>

namespace adascale {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// a file (checkpoint, state) that is damaged or does not match what reads it
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace adascale
