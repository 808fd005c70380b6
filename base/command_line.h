// A small declarative command-line parser, the one argument style of every program: options are
// bound to variables, whose values before parsing are the defaults that --help shows. std only
// (the embedded build links no Boost).
//
//   --name VALUE, --name=VALUE   an option with a value; numbers are parsed strictly
//   --name                       a flag
//   --section.key VALUE          with dotted_options(): collected for the caller (config overrides)
//   --help, -h                   anywhere: prints help() and parse() returns kHelp
//   --version                    anywhere: prints "<program> <version>", returns kVersion
//
// Every mistake (unknown option, missing value, an option given twice, a bad number, a missing
// required option) throws UsageError with one line that names the option and ends with
// "(see --help)". Misuse of the builder itself (a name registered twice) throws std::logic_error.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace adascale::base {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CommandLine {
 public:
  // program: "adascale train"; summary: one line shown at the top of --help
  CommandLine(std::string program, std::string summary);

  // Names are given with or without the leading "--". A help text may hold '\n': its further
  // lines are aligned under the first.
  CommandLine& option(const std::string& name, std::string* target, const std::string& help,
                      const std::string& metavar = "VALUE");
  CommandLine& option(const std::string& name, int64_t* target, const std::string& help,
                      const std::string& metavar = "N");
  CommandLine& option(const std::string& name, int* target, const std::string& help,
                      const std::string& metavar = "N");
  CommandLine& option(const std::string& name, double* target, const std::string& help,
                      const std::string& metavar = "X");
  // repeatable: each occurrence appends
  CommandLine& option(const std::string& name, std::vector<std::string>* target,
                      const std::string& help, const std::string& metavar = "VALUE");
  CommandLine& flag(const std::string& name, bool* target, const std::string& help);  // sets true
  CommandLine& required(const std::string& name);  // an option that must be given
  // A numeric option outside [min, max] is a UsageError ("expected an integer >= 1, got '0'").
  CommandLine& range(const std::string& name, double min,
                     double max = std::numeric_limits<double>::infinity());
  // What --help shows as the default instead of the variable's value ("all" for a -1 limit;
  // "" shows none).
  CommandLine& default_text(const std::string& name, const std::string& text);
  // Options whose name contains a '.' ("--train.epochs 5", "--data.root=x") are collected as
  // "--name" "value" pairs into *rest instead of being refused; `help` describes them.
  CommandLine& dotted_options(std::vector<std::string>* rest, const std::string& help);
  // Free text printed after the options (modes, notes).
  CommandLine& epilog(const std::string& text);

  enum class Outcome { kRun, kHelp, kVersion };
  // Parses args (without the program name); see the top of this file.
  Outcome parse(const std::vector<std::string>& args);
  Outcome parse(int argc, const char* const* argv);  // argv[0] is the program and is skipped

  // Whether the last parse() saw the option (for options that exclude each other).
  bool given(const std::string& name) const;

  // usage line, summary, then one aligned line per option with its default
  std::string help() const;
  std::string version() const;  // "<program> <ADASCALE_VERSION>"

 private:
  enum class Kind { kText, kInt, kInt64, kReal, kList, kFlag };
  struct Option {
    std::string name;  // "--bundle"
    std::string help, metavar, default_text;
    Kind kind = Kind::kText;
    void* target = nullptr;
    double min = -std::numeric_limits<double>::infinity();
    double max = std::numeric_limits<double>::infinity();
    bool required = false;
    int seen = 0;
  };

  Option& add(const std::string& name, Kind kind, void* target, const std::string& help,
              const std::string& metavar);
  Option& find(const std::string& name);  // a registered option, else std::logic_error
  Option* lookup(const std::string& dashed_name);
  const Option* lookup(const std::string& dashed_name) const;
  void assign(Option& option, const std::string& value) const;
  std::string usage_line() const;

  std::string program_, summary_, epilog_;
  std::vector<Option> options_;
  std::vector<std::string>* dotted_ = nullptr;
  std::string dotted_help_;
};

}  // namespace adascale::base
