#include "tools/adascale-run/branch_list.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace adascale::run_cli {
namespace {

// Numeric leaves of the costs object, nested keys joined with '.' ("latency_ms.median"), arrays
// of per-thread-count entries by their count ("latency_by_threads.2t.median").
void flatten_numbers(const nlohmann::json& j, const std::string& prefix,
                     std::map<std::string, double>* out, std::vector<std::string>* order) {
  for (const auto& item : j.items()) {
    const std::string key = prefix.empty() ? item.key() : prefix + "." + item.key();
    if (item.value().is_object()) {
      flatten_numbers(item.value(), key, out, order);
    } else if (item.value().is_array()) {
      // entries per thread count (latency_by_threads): "latency_by_threads.2t.median"
      for (const auto& entry : item.value()) {
        const auto threads = entry.is_object() ? entry.find("threads") : entry.end();
        if (!entry.is_object() || threads == entry.end() || !threads->is_number_integer()) continue;
        nlohmann::json rest = entry;
        rest.erase("threads");
        flatten_numbers(rest, key + "." + std::to_string(threads->get<int64_t>()) + "t", out,
                        order);
      }
    } else if (item.value().is_number()) {
      if (std::find(order->begin(), order->end(), key) == order->end()) order->push_back(key);
      (*out)[key] = item.value().get<double>();
    }
  }
}

std::string format_number(double v) {
  char text[64];
  if (std::fabs(v) < 1e15 && v == std::floor(v))
    std::snprintf(text, sizeof(text), "%.0f", v);
  else
    std::snprintf(text, sizeof(text), "%.4g", v);
  return text;
}

}  // namespace

void print_list(const Runtime& rt) {
  std::vector<std::string> columns{"branch"};
  std::vector<std::map<std::string, double>> rows;
  for (const auto& branch : rt.branches) {
    const nlohmann::json costs = nlohmann::json::parse(branch.second, nullptr, false);
    rows.emplace_back();
    if (costs.is_object()) flatten_numbers(costs, "", &rows.back(), &columns);
  }
  std::vector<std::vector<std::string>> cells;
  for (size_t r = 0; r < rows.size(); ++r) {
    cells.push_back({rt.branches[r].first});
    for (size_t c = 1; c < columns.size(); ++c) {
      auto it = rows[r].find(columns[c]);
      cells.back().push_back(it == rows[r].end() ? "-" : format_number(it->second));
    }
  }
  std::vector<size_t> widths;
  for (size_t c = 0; c < columns.size(); ++c) {
    size_t w = columns[c].size();
    for (const auto& row : cells) w = std::max(w, row[c].size());
    widths.push_back(w);
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    for (size_t c = 0; c < row.size(); ++c)
      std::printf(c == 0 ? "%-*s" : "  %*s", static_cast<int>(widths[c]), row[c].c_str());
    std::printf("\n");
  };
  std::printf("%zu branches, input %lldx%lldx%lld (CxHxW), %zu classes\n", rt.branches.size(),
              static_cast<long long>(rt.input.channels), static_cast<long long>(rt.input.height),
              static_cast<long long>(rt.input.width), rt.classes);
  print_row(columns);
  for (const auto& row : cells) print_row(row);
}

}  // namespace adascale::run_cli
