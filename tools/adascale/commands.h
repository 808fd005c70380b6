// The subcommands of `adascale`, one file each: each parses its own options (base::CommandLine,
// so every one answers --help and --version), calls the libraries and prints. Usage mistakes
// throw base::UsageError, config mistakes ConfigError.
#pragma once

#include <string>
#include <vector>

namespace adascale::cli {

int run_train(const std::vector<std::string>& args);
int run_eval(const std::vector<std::string>& args);
int run_compress(const std::vector<std::string>& args);
int run_export(const std::vector<std::string>& args);

}  // namespace adascale::cli
