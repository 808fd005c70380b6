#include "tools/adascale-run/node_profile.h"

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

namespace adascale::run_cli {

void print_profile(Runtime& rt, const std::string& branch, int64_t runs, adascale_backend backend,
                   int threads) {
  size_t count = 0;
  rt.check(adascale_profile(rt.get(), 1, nullptr, 0, &count), "profile failed");  // count only
  std::vector<adascale_node_timing> nodes(count);
  rt.check(adascale_profile(rt.get(), static_cast<int>(runs), nodes.data(), count, &count),
           "profile failed");
  double total = 0;
  for (const auto& n : nodes) total += n.median_us;
  std::printf("branch %s (backend %s, %d thread%s), medians of %lld runs, batch 1\n",
              branch.c_str(), backend_name(backend), threads, threads == 1 ? "" : "s",
              static_cast<long long>(runs));
  std::printf("%-32s %-18s %-5s %-10s %10s %7s\n", "node (output)", "layer", "dtype", "kernel",
              "us", "share");
  for (const auto& n : nodes)
    std::printf("%-32s %-18s %-5s %-10s %10.2f %6.1f%%\n", n.output, n.layer, n.dtype, n.kernel,
                n.median_us, total > 0 ? 100 * n.median_us / total : 0.0);
  // per layer type and output precision, in order of first appearance
  std::vector<std::pair<std::string, std::pair<int, double>>> layers;
  for (const auto& n : nodes) {
    const std::string key = std::string(n.layer) + " " + n.dtype;
    auto it =
        std::find_if(layers.begin(), layers.end(), [&](const auto& l) { return l.first == key; });
    if (it == layers.end()) it = layers.insert(layers.end(), {key, {0, 0.0}});
    it->second.first += 1;
    it->second.second += n.median_us;
  }
  std::printf("\n%-26s %6s %10s %7s\n", "layer type", "nodes", "us", "share");
  for (const auto& l : layers)
    std::printf("%-26s %6d %10.2f %6.1f%%\n", l.first.c_str(), l.second.first, l.second.second,
                total > 0 ? 100 * l.second.second / total : 0.0);
  std::printf("%-26s %6zu %10.2f\n", "total (sum of medians)", nodes.size(), total);
}

}  // namespace adascale::run_cli
