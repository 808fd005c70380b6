#include "base/command_line.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#ifndef ADASCALE_VERSION
#define ADASCALE_VERSION "unknown"
#endif

namespace adascale::base {
namespace {

constexpr const char* kSeeHelp = " (see --help)";
// Wider option names push their help text to the next line rather than every line to the right.
constexpr size_t kMaxNameColumn = 30;
constexpr size_t kLineWidth = 100;  // of a help line, where the text allows

std::string dashed(const std::string& name) {
  return name.rfind("--", 0) == 0 ? name : "--" + name;
}

// "--x" followed by anything: the next option, not a value (values that start with "--" are
// written --name=--value). "-5" stays a value.
bool looks_like_option(const std::string& arg) { return arg.size() > 2 && arg.rfind("--", 0) == 0; }

std::string format_real(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

// [+-]digits, nothing else (strtoll alone would take leading blanks and trailing junk).
bool integer_syntax(const std::string& text) {
  size_t i = text[0] == '+' || text[0] == '-' ? 1 : 0;
  if (i == text.size()) return false;
  return std::all_of(text.begin() + static_cast<std::ptrdiff_t>(i), text.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

// [+-](digits[.digits] | .digits)[(e|E)[+-]digits]: no blanks, hex, inf or nan.
bool real_syntax(const std::string& text) {
  size_t i = text[0] == '+' || text[0] == '-' ? 1 : 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    return i - start;
  };
  size_t mantissa = digits();
  if (i < text.size() && text[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0) return false;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == text.size();
}

}  // namespace

CommandLine::CommandLine(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

CommandLine::Option& CommandLine::add(const std::string& name, Kind kind, void* target,
                                      const std::string& help, const std::string& metavar) {
  const std::string full = dashed(name);
  if (full.size() <= 2 || full == "--help" || full == "--version" || lookup(full))
    throw std::logic_error("CommandLine: option '" + full + "' is empty, reserved or registered");
  Option option;
  option.name = full;
  option.kind = kind;
  option.target = target;
  option.help = help;
  option.metavar = kind == Kind::kFlag ? "" : metavar;
  options_.push_back(std::move(option));
  return options_.back();
}

CommandLine& CommandLine::option(const std::string& name, std::string* target,
                                 const std::string& help, const std::string& metavar) {
  add(name, Kind::kText, target, help, metavar).default_text = *target;
  return *this;
}

CommandLine& CommandLine::option(const std::string& name, int64_t* target, const std::string& help,
                                 const std::string& metavar) {
  add(name, Kind::kInt64, target, help, metavar).default_text = std::to_string(*target);
  return *this;
}

CommandLine& CommandLine::option(const std::string& name, int* target, const std::string& help,
                                 const std::string& metavar) {
  add(name, Kind::kInt, target, help, metavar).default_text = std::to_string(*target);
  return *this;
}

CommandLine& CommandLine::option(const std::string& name, double* target, const std::string& help,
                                 const std::string& metavar) {
  add(name, Kind::kReal, target, help, metavar).default_text = format_real(*target);
  return *this;
}

CommandLine& CommandLine::option(const std::string& name, std::vector<std::string>* target,
                                 const std::string& help, const std::string& metavar) {
  Option& o = add(name, Kind::kList, target, help, metavar);
  for (const std::string& value : *target)
    o.default_text += (o.default_text.empty() ? "" : ",") + value;
  return *this;
}

CommandLine& CommandLine::flag(const std::string& name, bool* target, const std::string& help) {
  add(name, Kind::kFlag, target, help, "");
  return *this;
}

CommandLine& CommandLine::required(const std::string& name) {
  find(name).required = true;
  return *this;
}

CommandLine& CommandLine::range(const std::string& name, double min, double max) {
  Option& o = find(name);
  if (o.kind != Kind::kInt && o.kind != Kind::kInt64 && o.kind != Kind::kReal)
    throw std::logic_error("CommandLine: range() on the non-numeric option '" + o.name + "'");
  o.min = min;
  o.max = max;
  return *this;
}

CommandLine& CommandLine::default_text(const std::string& name, const std::string& text) {
  find(name).default_text = text;
  return *this;
}

CommandLine& CommandLine::dotted_options(std::vector<std::string>* rest, const std::string& help) {
  dotted_ = rest;
  dotted_help_ = help;
  return *this;
}

CommandLine& CommandLine::epilog(const std::string& text) {
  epilog_ = text;
  return *this;
}

CommandLine::Option* CommandLine::lookup(const std::string& dashed_name) {
  for (Option& o : options_)
    if (o.name == dashed_name) return &o;
  return nullptr;
}

const CommandLine::Option* CommandLine::lookup(const std::string& dashed_name) const {
  return const_cast<CommandLine*>(this)->lookup(dashed_name);
}

CommandLine::Option& CommandLine::find(const std::string& name) {
  if (Option* o = lookup(dashed(name))) return *o;
  throw std::logic_error("CommandLine: no option '" + dashed(name) + "'");
}

bool CommandLine::given(const std::string& name) const {
  const Option* o = lookup(dashed(name));
  return o && o->seen > 0;
}

void CommandLine::assign(Option& o, const std::string& value) const {
  switch (o.kind) {
    case Kind::kText:
      *static_cast<std::string*>(o.target) = value;
      return;
    case Kind::kList:
      static_cast<std::vector<std::string>*>(o.target)->push_back(value);
      return;
    case Kind::kFlag:
      *static_cast<bool*>(o.target) = true;
      return;
    case Kind::kInt:
    case Kind::kInt64:
    case Kind::kReal:
      break;
  }
  const bool integer = o.kind != Kind::kReal;
  // "an integer", "an integer >= 1", "a number from 0 to 1"
  auto bound = [&](double v) { return integer ? std::to_string(std::llround(v)) : format_real(v); };
  std::string expected = integer ? "an integer" : "a number";
  if (std::isfinite(o.min) && std::isfinite(o.max))
    expected += " from " + bound(o.min) + " to " + bound(o.max);
  else if (std::isfinite(o.min))
    expected += " >= " + bound(o.min);
  else if (std::isfinite(o.max))
    expected += " <= " + bound(o.max);
  auto refuse = [&](const std::string& why) {
    throw UsageError(o.name + ": expected " + expected + ", got '" + value + "'" + why + kSeeHelp);
  };
  if (value.empty() || !(integer ? integer_syntax(value) : real_syntax(value))) refuse("");
  errno = 0;
  if (integer) {
    const long long parsed = std::strtoll(value.c_str(), nullptr, 10);
    const bool fits = o.kind == Kind::kInt64 || (parsed >= std::numeric_limits<int>::min() &&
                                                 parsed <= std::numeric_limits<int>::max());
    if (errno == ERANGE || !fits) refuse(" (out of range)");
    if (static_cast<double>(parsed) < o.min || static_cast<double>(parsed) > o.max) refuse("");
    if (o.kind == Kind::kInt)
      *static_cast<int*>(o.target) = static_cast<int>(parsed);
    else
      *static_cast<int64_t*>(o.target) = static_cast<int64_t>(parsed);
  } else {
    const double parsed = std::strtod(value.c_str(), nullptr);
    if (errno == ERANGE) refuse(" (out of range)");
    if (parsed < o.min || parsed > o.max) refuse("");
    *static_cast<double*>(o.target) = parsed;
  }
}

CommandLine::Outcome CommandLine::parse(int argc, const char* const* argv) {
  return parse(std::vector<std::string>(argv + std::min(argc, 1), argv + std::max(argc, 0)));
}

CommandLine::Outcome CommandLine::parse(const std::vector<std::string>& args) {
  // --help and --version win over any mistake next to them.
  if (std::any_of(args.begin(), args.end(),
                  [](const auto& a) { return a == "--help" || a == "-h"; })) {
    std::fputs(help().c_str(), stdout);
    return Outcome::kHelp;
  }
  if (std::find(args.begin(), args.end(), "--version") != args.end()) {
    std::printf("%s\n", version().c_str());
    return Outcome::kVersion;
  }
  for (Option& o : options_) o.seen = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!looks_like_option(arg))
      throw UsageError((arg.rfind('-', 0) == 0 && arg.size() > 1 ? "unknown option '"
                                                                 : "unexpected argument '") +
                       arg + "'" + kSeeHelp);
    const size_t equals = arg.find('=');
    const std::string name = arg.substr(0, equals);
    auto value = [&]() -> std::string {
      if (equals != std::string::npos) return arg.substr(equals + 1);
      if (i + 1 >= args.size() || looks_like_option(args[i + 1]))
        throw UsageError(name + " needs a value" + kSeeHelp);
      return args[++i];
    };
    Option* o = lookup(name);
    if (!o) {
      if (!dotted_ || name.find('.') == std::string::npos)
        throw UsageError("unknown option '" + name + "'" + kSeeHelp);
      dotted_->push_back(name);
      dotted_->push_back(value());
      continue;
    }
    if (o->seen > 0 && o->kind != Kind::kList)
      throw UsageError(name + " is given twice" + kSeeHelp);
    ++o->seen;
    if (o->kind == Kind::kFlag && equals != std::string::npos)
      throw UsageError(name + " takes no value" + kSeeHelp);
    assign(*o, o->kind == Kind::kFlag ? std::string() : value());
  }
  for (const Option& o : options_)
    if (o.required && o.seen == 0) throw UsageError(o.name + " is required" + kSeeHelp);
  return Outcome::kRun;
}

std::string CommandLine::usage_line() const {
  std::string line = "usage: " + program_;
  bool optional = dotted_ != nullptr;
  for (const Option& o : options_) {
    if (o.required)
      line += " " + o.name + (o.metavar.empty() ? "" : " " + o.metavar);
    else
      optional = true;
  }
  return line + (optional ? " [options]" : "") + "\n";
}

std::string CommandLine::help() const {
  struct Row {
    std::string name, text, notes;  // notes: "(default 1)", "(required)", "(repeatable)"
  };
  std::vector<Row> rows;
  for (const Option& o : options_) {
    std::string notes;
    if (o.required)
      notes = "(required)";
    else if (!o.default_text.empty())
      notes = "(default " + o.default_text + ")";
    if (o.kind == Kind::kList) notes += (notes.empty() ? "" : " ") + std::string("(repeatable)");
    rows.push_back({o.name + (o.metavar.empty() ? "" : " " + o.metavar), o.help, notes});
  }
  if (dotted_) rows.push_back({"--SECTION.KEY VALUE", dotted_help_, ""});
  rows.push_back({"-h, --help", "print this help and exit", ""});
  rows.push_back({"--version", "print the version and exit", ""});
  size_t column = 0;
  for (const Row& row : rows)
    if (row.name.size() <= kMaxNameColumn) column = std::max(column, row.name.size());
  const std::string indent(2 + column + 2, ' ');

  std::string out = usage_line() + summary_ + "\n\noptions:\n";
  for (const Row& row : rows) {
    std::string entry = "  " + row.name;
    entry +=
        row.name.size() > column ? "\n" + indent : std::string(column - row.name.size() + 2, ' ');
    for (char c : row.text) entry += c == '\n' ? "\n" + indent : std::string(1, c);
    if (!row.notes.empty()) {
      // on a line of their own when the last line of the text has no room left
      const size_t last_line = entry.size() - (entry.rfind('\n') + 1);
      entry += last_line + 1 + row.notes.size() > kLineWidth ? "\n" + indent : std::string(" ");
      entry += row.notes;
    }
    out += entry + "\n";
  }
  if (!epilog_.empty()) out += "\n" + epilog_ + (epilog_.back() == '\n' ? "" : "\n");
  return out;
}

std::string CommandLine::version() const { return program_ + " " + ADASCALE_VERSION; }

}  // namespace adascale::base
