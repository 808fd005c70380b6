#include "tools/scenario/scenario.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "runtime/adapt/period_schedule.h"
#include "tools/scenario/relative_budget.h"

namespace adascale::scenario {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr size_t kMaxPrintedValue = 80;  // characters of a value quoted in an error

bool name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// A value as quoted in an error: shortened, so that a hostile line still gives a short message.
std::string quote_value(const std::string& text) {
  if (text.size() <= kMaxPrintedValue) return "'" + text + "'";
  return "'" + text.substr(0, kMaxPrintedValue) + "...' (" + std::to_string(text.size()) +
         " characters)";
}

std::string trim(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  const size_t end = text.find_last_not_of(" \t\r");
  return text.substr(begin, end - begin + 1);
}

class Parser {
 public:
  Parser(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(int line, const std::string& key, const std::string& message) const {
    std::string where = path_;
    if (line > 0) where += ":" + std::to_string(line);
    const std::string shown =
        key.size() <= kMaxPrintedValue ? key : key.substr(0, kMaxPrintedValue) + "...";
    throw ScenarioError(where + ": " + (key.empty() ? "" : "key '" + shown + "': ") + message);
  }

  // A finite number (or "inf"/"none" where allowed) within [lo, hi]; lo itself excluded when
  // `open_lo`.
  double number(int line, const std::string& key, const std::string& text, double lo, bool open_lo,
                double hi = kInf, bool allow_inf = false) const {
    if (allow_inf && (text == "inf" || text == "none")) return kInf;
    char* end = nullptr;
    errno = 0;
    const double value = std::strtod(text.c_str(), &end);
    const bool parsed = !text.empty() && end && *end == '\0' && errno == 0 && std::isfinite(value);
    if (!parsed || value < lo || (open_lo && value == lo) || value > hi) {
      std::ostringstream expected;
      expected.precision(15);
      expected << "expected a number " << (open_lo ? "> " : ">= ") << lo;
      if (hi != kInf) expected << " and <= " << hi;
      if (allow_inf) expected << " (or inf)";
      fail(line, key, expected.str() + ", got " + quote_value(text));
    }
    return value;
  }

  int integer(int line, const std::string& key, const std::string& text, int lo, int hi) const {
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || value < lo || value > hi)
      fail(line, key,
           "expected an integer within " + std::to_string(lo) + ".." + std::to_string(hi) +
               ", got " + quote_value(text));
    return static_cast<int>(value);
  }

  bool boolean(int line, const std::string& key, const std::string& text) const {
    if (text == "true" || text == "on" || text == "yes") return true;
    if (text == "false" || text == "off" || text == "no") return false;
    fail(line, key, "expected true or false, got " + quote_value(text));
  }

  MemoryBudgetMode memory_mode(int line, const std::string& key, const std::string& text) const {
    if (text == "none") return MemoryBudgetMode::kNone;
    if (text == "absolute") return MemoryBudgetMode::kAbsolute;
    if (text == "available_minus_margin") return MemoryBudgetMode::kAvailableMinusMargin;
    fail(line, key, "expected none, absolute or available_minus_margin, got " + quote_value(text));
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void parse_budget_key(const Parser& p, int line, const std::string& key, const std::string& value,
                      BudgetChange* change) {
  if (key == "latency_ms") {
    std::string error;
    if (const auto relative = parse_relative_latency(value, &error)) {
      change->latency_relative = relative;  // resolved against the bundle before the run
      change->latency_ms = std::numeric_limits<double>::quiet_NaN();
    } else {
      if (!error.empty()) p.fail(line, key, error + ", got " + quote_value(value));
      change->latency_ms = p.number(line, key, value, kMinLatencyBudgetMs, false, kInf, true);
    }
  } else if (key == "memory_mode")
    change->memory_mode = p.memory_mode(line, key, value);
  else if (key == "memory_mib")
    change->memory_mib = p.number(line, key, value, 0, false, kMaxMemoryBudgetMib);
  else if (key == "energy_mj")
    change->energy_mj = p.number(line, key, value, 0, true, kInf, true);
  else
    p.fail(line, key,
           "unknown budget key (latency_ms, memory_mode, memory_mib, energy_mj are known)");
}

Event parse_event(const Parser& p, int line, const std::string& time_text,
                  const std::string& action) {
  Event e;
  e.line = line;
  e.text = action;
  e.time_s = p.number(line, time_text, time_text, 0, false);
  std::istringstream words(action);
  std::string verb;
  words >> verb;
  std::vector<std::string> args;
  for (std::string word; words >> word;) {
    // "KEY=FACTOR x REFERENCE" (a relative budget) is one argument in three words
    if (word == "x" && !args.empty() && words >> word) {
      args.back() += " x " + word;
      continue;
    }
    args.push_back(word);
  }
  auto want_args = [&](size_t n, const char* usage) {
    if (args.size() != n) p.fail(line, time_text, std::string("expected '") + usage + "'");
  };
  if (verb == "burners_start" || verb == "burners_stop") {
    want_args(1, verb == "burners_start" ? "burners_start N" : "burners_stop N");
    e.kind = verb == "burners_start" ? EventKind::kStartBurners : EventKind::kStopBurners;
    e.count = p.integer(line, time_text, args[0], 1, kMaxBurners);
  } else if (verb == "balloon_alloc") {
    want_args(1, "balloon_alloc MIB");
    e.kind = EventKind::kAllocateBalloon;
    e.mib = p.number(line, time_text, args[0], 0, true, kMaxBalloonMib);
  } else if (verb == "balloon_release") {
    want_args(0, "balloon_release");
    e.kind = EventKind::kReleaseBalloon;
  } else if (verb == "budget") {
    if (args.empty()) p.fail(line, time_text, "expected 'budget KEY=VALUE ...'");
    e.kind = EventKind::kBudget;
    std::set<std::string> keys;
    for (const std::string& arg : args) {
      const size_t eq = arg.find('=');
      if (eq == std::string::npos || eq == 0)
        p.fail(line, time_text, "budget arguments are KEY=VALUE, got " + quote_value(arg));
      const std::string key = arg.substr(0, eq);
      if (!keys.insert(key).second) p.fail(line, key, "given twice in one budget event");
      parse_budget_key(p, line, key, arg.substr(eq + 1), &e.budget);
    }
  } else {
    p.fail(line, time_text,
           "unknown action " + quote_value(verb) +
               " (burners_start, burners_stop, balloon_alloc, balloon_release, budget)");
  }
  return e;
}

// Over-long lines and control characters (a tab, and a CR that ends the line, are fine).
void check_line_characters(const Parser& p, int line, const std::string& raw) {
  if (raw.size() > kMaxLineLength)
    p.fail(line, "",
           "line of " + std::to_string(raw.size()) + " characters, more than " +
               std::to_string(kMaxLineLength));
  for (size_t i = 0; i < raw.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(raw[i]);
    if ((c < 0x20 && c != '\t' && !(c == '\r' && i + 1 == raw.size())) || c == 0x7f) {
      char code[8];
      std::snprintf(code, sizeof(code), "0x%02x", c);
      p.fail(line, "",
             std::string("control character ") + code + " at column " + std::to_string(i + 1));
    }
  }
}

void parse_scenario_key(const Parser& p, int line, const std::string& key, const std::string& value,
                        Scenario* s) {
  if (key == "name") {
    if (!valid_name(value))
      p.fail(line, key,
             "expected 1 to " + std::to_string(kMaxNameLength) +
                 " characters of A-Z a-z 0-9 . _ - (one file name, not . or ..), got " +
                 quote_value(value));
    s->name = value;
  } else if (key == "duration_s")
    s->duration_s = p.number(line, key, value, kMinDurationS, false, kMaxDurationS);
  else if (key == "frame_images")
    s->frame_images = p.integer(line, key, value, 1, kMaxFrameImages);
  else if (key == "settle_s")
    s->settle_s = p.number(line, key, value, 0, false, kMaxSettleS);
  else if (key == "calibration_s")
    s->calibration_s = p.number(line, key, value, 0, true, kMaxCalibrationS);
  else if (key == "calibration_interleaved")
    s->calibration_interleaved = p.boolean(line, key, value);
  else if (key == "calibration_refine_requests")
    s->calibration_refine_requests =
        static_cast<size_t>(p.integer(line, key, value, 0, kMaxRefineRequests));
  else if (key == "violation_target_pct")
    s->violation_target_pct = p.number(line, key, value, 0, false, 100);
  else
    p.fail(line, key,
           "unknown key in [scenario] (name, duration_s, frame_images, settle_s, "
           "calibration_s, calibration_interleaved, calibration_refine_requests, "
           "violation_target_pct)");
}

void parse_adaptation_key(const Parser& p, int line, const std::string& key,
                          const std::string& value, AdaptationOptions* a) {
  if (key == "period_ms")
    a->monitor.period_ms = p.number(line, key, value, kMinPeriodMs, false, kMaxPeriodMs);
  else if (key == "period_jitter")
    a->period_jitter = p.number(line, key, value, 0, false, PeriodSchedule::kMaxJitter);
  else if (key == "probe_period_ms")
    a->monitor.probe_period_ms = p.number(line, key, value, 0, false, 3600e3);
  else if (key == "min_dwell_ms")
    a->selector.min_dwell_ms = p.number(line, key, value, 0, false, 3600e3);
  else if (key == "switch_margin")
    a->selector.switch_margin = p.number(line, key, value, 0, false, 1);
  else if (key == "entry_margin")
    a->selector.entry_margin = p.number(line, key, value, 0, false, 0.99);
  else if (key == "trial_window_ms")
    a->selector.trial_window_ms = p.number(line, key, value, 0, false, 3600e3);
  else if (key == "context_change") {
    double& change = a->selector.context_change;
    change = p.number(line, key, value, 0, false, 100);
    if (change != 0 && change <= 1)
      p.fail(line, key, "expected 0 (off) or a ratio > 1, got " + quote_value(value));
  } else if (key == "context_settle_ms")
    a->selector.context_settle_ms = p.number(line, key, value, 0, false, 3600e3);
  else if (key == "objective_tolerance")
    a->selector.objective_tolerance = p.number(line, key, value, 0, false, 1);
  else if (key == "contended_tail_prior")
    a->device.contended_tail_prior = p.number(line, key, value, 1, false, 10);
  else if (key == "steady_contended_tail")
    a->device.steady_contended_tail = p.boolean(line, key, value);
  else if (key == "sustained_runnable")
    a->device.sustained_runnable = p.boolean(line, key, value);
  else if (key == "tail_latency")
    a->selector.tail_latency = p.boolean(line, key, value);
  else if (key == "tail_quantile")
    a->device.tail_quantile = p.number(line, key, value, 0.5, false, 1);
  else if (key == "dwell_doublings")
    a->selector.dwell_doublings = static_cast<int>(p.integer(line, key, value, 0, 8));
  else if (key == "probe_headroom")
    a->selector.probe_headroom = p.number(line, key, value, 0, false, 10);
  else if (key == "probe_interval_ms")
    a->selector.probe_interval_ms = p.number(line, key, value, 0, false, 3600e3);
  else if (key == "probe_delay_ms")
    a->selector.probe_delay_ms = p.number(line, key, value, 0, false, 3600e3);
  else if (key == "evidence_under_load")
    a->selector.evidence_under_load = p.boolean(line, key, value);
  else
    p.fail(line, key,
           "unknown key in [adaptation] (period_ms, period_jitter, probe_period_ms, min_dwell_ms, "
           "switch_margin, entry_margin, trial_window_ms, context_change, context_settle_ms, "
           "objective_tolerance, contended_tail_prior, steady_contended_tail, sustained_runnable, "
           "tail_latency, tail_quantile, dwell_doublings, probe_headroom, probe_interval_ms, "
           "probe_delay_ms, evidence_under_load)");
}

// The file name without its extension, other characters replaced by '_'.
std::string name_from_path(const Parser& p, const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = base.rfind('.');
  if (dot != std::string::npos && dot != 0) base.resize(dot);
  for (char& c : base)
    if (!name_char(c)) c = '_';
  if (base.size() > kMaxNameLength) base.resize(kMaxNameLength);
  if (!valid_name(base))
    p.fail(0, "name", "cannot be derived from the file name " + quote_value(base) + "; set it");
  return base;
}

// Replays the timeline once so that impossible scripts fail here, not halfway through a run.
void check_timeline(const Parser& p, const Scenario& s) {
  int burners = 0;
  std::vector<double> balloons;  // MiB, held at once
  RequestBudgets budgets = s.budgets;
  auto check_budgets = [&](int line_no, const std::string& key) {
    if (budgets.memory_mode == MemoryBudgetMode::kAbsolute && budgets.memory_mib <= 0)
      p.fail(line_no, key, "an absolute memory budget needs memory_mib > 0");
  };
  check_budgets(0, "memory_mib");
  for (const Event& e : s.events) {
    const std::string key = e.text.substr(0, e.text.find(' '));
    if (e.time_s >= s.duration_s)
      p.fail(e.line, key,
             "event at t=" + std::to_string(e.time_s) + " s is not before the end (duration_s " +
                 std::to_string(s.duration_s) + ")");
    switch (e.kind) {
      case EventKind::kStartBurners:
        burners += e.count;
        if (burners > kMaxBurners)
          p.fail(e.line, key, "more than " + std::to_string(kMaxBurners) + " burners at once");
        break;
      case EventKind::kStopBurners:
        if (e.count > burners)
          p.fail(e.line, key,
                 "stops " + std::to_string(e.count) + " burners but only " +
                     std::to_string(burners) + " run");
        burners -= e.count;
        break;
      case EventKind::kAllocateBalloon: {
        balloons.push_back(e.mib);
        double held = 0;
        for (double mib : balloons) held += mib;
        if (balloons.size() > static_cast<size_t>(kMaxBalloons))
          p.fail(e.line, key, "more than " + std::to_string(kMaxBalloons) + " balloons at once");
        if (held > kMaxBalloonMib)
          p.fail(e.line, key,
                 "balloons would hold " + std::to_string(static_cast<long long>(held)) +
                     " MiB at once, more than " +
                     std::to_string(static_cast<long long>(kMaxBalloonMib)));
        break;
      }
      case EventKind::kReleaseBalloon:
        if (balloons.empty()) p.fail(e.line, key, "no balloon to release");
        balloons.pop_back();
        break;
      case EventKind::kBudget:
        apply_budget_change(e.budget, &budgets);
        check_budgets(e.line, key);
        break;
    }
  }
}

}  // namespace

const char* memory_mode_name(MemoryBudgetMode mode) {
  switch (mode) {
    case MemoryBudgetMode::kNone:
      return "none";
    case MemoryBudgetMode::kAbsolute:
      return "absolute";
    case MemoryBudgetMode::kAvailableMinusMargin:
      return "available_minus_margin";
  }
  return "none";
}

Budgets per_image_budgets(const RequestBudgets& request, int frame_images) {
  Budgets b;
  const double images = std::max(1, frame_images);
  b.latency_ms = request.latency_ms / images;
  b.energy_mj = request.energy_mj / images;
  b.memory_mode = request.memory_mode;
  b.memory_bytes = request.memory_mib * 1024.0 * 1024.0;
  return b;
}

void apply_budget_change(const BudgetChange& change, RequestBudgets* budgets) {
  if (change.latency_ms) budgets->latency_ms = *change.latency_ms;
  if (change.memory_mode) budgets->memory_mode = *change.memory_mode;
  if (change.memory_mib) budgets->memory_mib = *change.memory_mib;
  if (change.energy_mj) budgets->energy_mj = *change.energy_mj;
}

bool tightens(const RequestBudgets& before, const RequestBudgets& after) {
  if (after.latency_ms < before.latency_ms || after.energy_mj < before.energy_mj) return true;
  if (after.memory_mode == MemoryBudgetMode::kNone) return false;
  if (before.memory_mode == MemoryBudgetMode::kNone || after.memory_mode != before.memory_mode)
    return true;
  // An absolute limit tightens when it shrinks, a margin when it grows.
  return after.memory_mode == MemoryBudgetMode::kAbsolute ? after.memory_mib < before.memory_mib
                                                          : after.memory_mib > before.memory_mib;
}

Scenario parse_scenario(const std::string& text, const std::string& path) {
  const Parser p(path);
  Scenario s;
  s.path = path;
  std::string section;
  std::set<std::string> seen;  // "section.key", for duplicates
  std::set<std::string> sections_seen;
  std::istringstream lines(text);
  std::string raw;
  int line = 0;
  while (std::getline(lines, raw)) {
    ++line;
    check_line_characters(p, line, raw);
    // Comments: whole lines starting with # or ;, and " #" to the end of a line.
    const size_t hash = raw.find(" #");
    std::string content = trim(hash == std::string::npos ? raw : raw.substr(0, hash));
    if (content.empty() || content[0] == '#' || content[0] == ';') continue;
    if (content.front() == '[') {
      if (content.back() != ']')
        p.fail(line, "", "malformed section header " + quote_value(content));
      section = trim(content.substr(1, content.size() - 2));
      if (section != "scenario" && section != "adaptation" && section != "budgets" &&
          section != "timeline")
        p.fail(line, "",
               "unknown section " + quote_value("[" + section + "]") +
                   " (known: [scenario], [adaptation], [budgets], [timeline])");
      if (!sections_seen.insert(section).second)
        p.fail(line, "", "section [" + section + "] appears twice");
      continue;
    }
    const size_t eq = content.find('=');
    if (eq == std::string::npos)
      p.fail(line, "", "expected KEY = VALUE, got " + quote_value(content));
    const std::string key = trim(content.substr(0, eq));
    const std::string value = trim(content.substr(eq + 1));
    if (key.empty()) p.fail(line, "", "missing key before '='");
    if (section.empty()) p.fail(line, key, "outside any section");
    if (section == "timeline") {
      if (s.events.size() >= kMaxEvents)
        p.fail(line, key, "more than " + std::to_string(kMaxEvents) + " events in [timeline]");
      Event e = parse_event(p, line, key, value);
      if (!s.events.empty() && e.time_s < s.events.back().time_s)
        p.fail(line, key,
               "events must be in time order (this one comes after t=" +
                   std::to_string(s.events.back().time_s) + " s)");
      s.events.push_back(std::move(e));
      continue;
    }
    if (!seen.insert(section + "." + key).second)
      p.fail(line, key, "given twice in [" + section + "]");
    if (value.empty()) p.fail(line, key, "has no value");
    if (section == "scenario") {
      parse_scenario_key(p, line, key, value, &s);
    } else if (section == "adaptation") {
      parse_adaptation_key(p, line, key, value, &s.adaptation);
    } else {  // budgets
      BudgetChange change;
      parse_budget_key(p, line, key, value, &change);
      apply_budget_change(change, &s.budgets);
      if (change.latency_relative) {
        s.latency_relative = change.latency_relative;
        s.latency_relative_line = line;
      }
    }
  }
  if (s.duration_s <= 0) p.fail(0, "duration_s", "is required in [scenario]");
  if (s.name.empty()) s.name = name_from_path(p, path);
  check_timeline(p, s);
  return s;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), name_char);
}

Scenario load_scenario(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw ScenarioError(path + ": cannot open the scenario file");
  // At most one byte past the limit is read, whatever the file (or device) holds.
  std::string text(kMaxFileBytes + 1, '\0');
  file.read(&text[0], static_cast<std::streamsize>(text.size()));
  if (file.bad()) throw ScenarioError(path + ": cannot read the scenario file");
  text.resize(static_cast<size_t>(file.gcount()));
  if (text.size() > kMaxFileBytes)
    throw ScenarioError(path + ": larger than " + std::to_string(kMaxFileBytes) +
                        " bytes, not a scenario file");
  return parse_scenario(text, path);
}

std::vector<Segment> segments(const Scenario& s) {
  std::vector<Segment> out;
  Segment current;
  current.budgets = s.budgets;
  std::vector<double> balloons;
  double begin = 0;
  size_t i = 0;
  while (true) {
    const double end = i < s.events.size() ? s.events[i].time_s : s.duration_s;
    if (end > begin) {
      current.begin_s = begin;
      current.end_s = end;
      out.push_back(current);
      begin = end;
    }
    if (i >= s.events.size()) break;
    // Every event at this time, in file order.
    for (; i < s.events.size() && s.events[i].time_s == end; ++i) {
      const Event& e = s.events[i];
      switch (e.kind) {
        case EventKind::kStartBurners:
          current.burners += e.count;
          break;
        case EventKind::kStopBurners:
          current.burners -= e.count;
          break;
        case EventKind::kAllocateBalloon:
          balloons.push_back(e.mib);
          break;
        case EventKind::kReleaseBalloon:
          if (!balloons.empty()) balloons.pop_back();
          break;
        case EventKind::kBudget:
          apply_budget_change(e.budget, &current.budgets);
          break;
      }
    }
    current.balloon_mib = 0;
    for (double mib : balloons) current.balloon_mib += mib;
  }
  return out;
}

}  // namespace adascale::scenario
