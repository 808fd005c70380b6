// adascale: the server-side command line. `adascale <command> --help` lists a command's options.
// Errors are one line on stderr; exit code 2 for bad usage or config, 1 for everything else.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "base/command_line.h"
#include "base/error.h"
#include "tools/adascale/commands.h"

namespace {

const char* kUsage =
    "usage: adascale <command> [options]    (adascale <command> --help: its options)\n"
    "commands:\n"
    "  train     train the model a config describes (a [supernet] section: the multi-branch\n"
    "            network); resumable with --resume, splittable with --stop-after\n"
    "  eval      accuracy of a checkpoint, or one row per branch of a multi-branch checkpoint\n"
    "  compress  physically compress a trained ResNet or MobileNetV2 by an ordered operator list\n"
    "  export    lower, profile and parity-check branches into one runtime bundle\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string command = args[0];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command == "--version") {
    std::printf("adascale %s\n", ADASCALE_VERSION);
    return 0;
  }
  args.erase(args.begin());
  try {
    if (command == "train") return adascale::cli::run_train(args);
    if (command == "eval") return adascale::cli::run_eval(args);
    if (command == "compress") return adascale::cli::run_compress(args);
    if (command == "export") return adascale::cli::run_export(args);
    std::fprintf(stderr, "adascale: unknown command '%s'\n%s", command.c_str(), kUsage);
    return 2;
  } catch (const adascale::base::UsageError& e) {
    std::fprintf(stderr, "adascale %s: %s\n", command.c_str(), e.what());
    return 2;
  } catch (const adascale::ConfigError& e) {
    std::fprintf(stderr, "adascale %s: %s\n", command.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    // torch errors carry a multi-line backtrace; keep the first line
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    std::fprintf(stderr, "adascale %s: %s\n", command.c_str(), what.c_str());
    return 1;
  }
}
