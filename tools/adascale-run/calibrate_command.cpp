#include "tools/adascale-run/calibrate_command.h"

#include <algorithm>
#include <cstdio>

#include "runtime/device_profile.h"
#include "tools/adascale-run/failure.h"

namespace adascale::run_cli {

void run_calibration(const CalibrateRequest& request, Runtime& rt) {
  std::fprintf(stderr,
               "calibrating %zu branches (on every thread count up to --threads): %d runs each "
               "in %d interleaved rounds\n",
               rt.branches.size(), request.runs, request.rounds);
  rt.check(adascale_calibrate(rt.get(), request.runs, request.rounds,
                              request.out.empty() ? nullptr : request.out.c_str()),
           "calibration failed");
  // what was written, read back as every later session reads it
  const std::string path =
      request.out.empty() ? default_device_profile_path(rt.bundle_path()) : request.out;
  DeviceLatencyProfile profile;
  const Status read = read_device_profile(path, &profile);
  if (!read.ok()) throw Failure(read.message);
  std::printf("device      %s, %d thread%s, backend %s, batch %lld\n", profile.cpu.c_str(),
              profile.threads, profile.threads == 1 ? "" : "s", profile.backend.c_str(),
              static_cast<long long>(profile.batch));
  int width = 6;
  for (const BranchLatency& b : profile.branches)
    width = std::max(width, static_cast<int>(b.name.size()));
  std::printf("%-*s %11s %12s %9s %7s  %s\n", width, "branch", "catalog ms", "measured ms",
              "p90 ms", "ratio", "kernel");
  for (size_t i = 0; i < rt.branches.size() && i < profile.branches.size(); ++i) {
    const BranchLatency& b = profile.branches[i];
    BranchCosts costs;
    const bool parsed =
        parse_branch_costs(rt.branches[i].first, rt.branches[i].second, &costs).ok();
    const bool known = parsed && costs.latency_median_ms && *costs.latency_median_ms > 0;
    char catalog[32] = "-", ratio[32] = "-";
    if (known) {
      std::snprintf(catalog, sizeof(catalog), "%.4f", *costs.latency_median_ms);
      std::snprintf(ratio, sizeof(ratio), "%.3f", b.median_ms / *costs.latency_median_ms);
    }
    std::printf("%-*s %11s %12.4f %9.4f %7s  %s", width, b.name.c_str(), catalog, b.median_ms,
                b.p90_ms, ratio, b.kernel.c_str());
    for (const ThreadLatency& t : b.by_threads)
      std::printf("  %d threads %.4f (%.2fx)", t.threads, t.median_ms, t.median_ms / b.median_ms);
    std::printf("\n");
  }
  std::printf("ratio       measured / catalog median (one thread; more threads against it)\n");
  std::printf("wrote       %s\n", path.c_str());
  print_latency_source(rt);
}

void use_device_profile(const std::string& path, Runtime& rt) {
  rt.check(adascale_use_device_profile(rt.get(), path == "none" ? nullptr : path.c_str()),
           "cannot use the device profile");
}

void print_latency_source(Runtime& rt) {
  std::printf("latencies   %s\n", adascale_latency_source(rt.get()));
  std::fflush(stdout);  // before a replay's progress lines on stderr
}

}  // namespace adascale::run_cli
