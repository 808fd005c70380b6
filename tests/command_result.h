// Runs a shell command line for the end-to-end tests: exit code and its stdout and stderr.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace adascale::testing {

struct CommandResult {
  int code = -1;       // the exit status, -1 when it did not exit normally
  std::string output;  // stdout and stderr together
};

inline CommandResult run_command(const std::string& command_line) {
  CommandResult result;
  std::FILE* pipe = ::popen((command_line + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, got);
  const int status = ::pclose(pipe);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace adascale::testing
