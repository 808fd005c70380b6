// DeviceLatencyProfile: every branch's latency measured on the device that runs the bundle
// (`adascale-run --calibrate`, adascale_calibrate), stored as device-profile.json in the bundle
// folder by default. The adaptation loop predicts from these latencies instead of the export
// host's when the profile matches the session (docs/device-profile.md, "On-device calibration").
// (Named apart from adapt/profiler.h's DeviceProfile, which holds the cost model's constants.)
//
// Schema (version 2), defined once by to_json / from_json below:
//   {"schema_version": 2, "kind": "adascale-device-profile",
//    "cpu": string, "threads": int >= 1, "backend": "xnnpack" | "xnnpack-plain" | "reference",
//    "batch": int >= 1, "rounds": int >= 1,
//    "branches": [{"name": string, "median_ms": ms > 0, "p90_ms": ms >= median,
//                  "kernel": string, "runs": int >= 1,
//                  "by_threads": [{"threads": 2..threads, "median_ms": ms > 0,
//                                  "p90_ms": ms >= median}, ...]}, ...]}
// "threads" is the session's count. From version 2, median_ms and p90_ms are one thread's and
// by_threads holds every count from 2 to "threads" (absent when that is 1); version 1, still
// read, timed every branch on all "threads" and has no by_threads.
// The file is untrusted: it is read with its size, depth, counts and string lengths bounded, and
// a value of the wrong type, non-finite, negative or out of range is a one-line error naming it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "runtime/branch_costs.h"
#include "runtime/graph.h"

namespace adascale {

constexpr int kDeviceProfileSchemaVersion = 2;
constexpr int kOldestDeviceProfileSchemaVersion = 1;  // still read
constexpr const char* kDeviceProfileKind = "adascale-device-profile";
constexpr const char* kDeviceProfileFileName = "device-profile.json";
// far past any real profile (a 4096-branch profile is about 600 KiB)
constexpr size_t kMaxDeviceProfileBytes = 4u << 20;

struct BranchLatency {
  std::string name;
  double median_ms = 0;  // per call at the catalog's batch
  double p90_ms = 0;
  std::string kernel;  // what ran its convolutions: "xnnpack", "reference", "avx512vnni"
  int64_t runs = 0;
  std::vector<ThreadLatency> by_threads;  // 2 to the profile's threads, increasing
};

struct DeviceLatencyProfile {
  int schema_version = kDeviceProfileSchemaVersion;
  std::string cpu;  // describe_cpu()
  int threads = 1;
  std::string backend;
  int64_t batch = 1;
  int64_t rounds = 1;
  std::vector<BranchLatency> branches;  // in the bundle's order

  const BranchLatency* find(const std::string& name) const;
};

void to_json(nlohmann::json& j, const DeviceLatencyProfile& profile);
// Throws catalog_json::CatalogError naming the key (and the branch).
void from_json(const nlohmann::json& j, DeviceLatencyProfile& profile);

// The text form; a kFormat (kSchemaVersion for another version) status prefixed by `origin`.
std::string device_profile_to_text(const DeviceLatencyProfile& profile);
Status parse_device_profile(const std::string& text, const std::string& origin,
                            DeviceLatencyProfile* profile);
// kNotFound when there is no file at `path`, kIo when it cannot be read.
Status read_device_profile(const std::string& path, DeviceLatencyProfile* profile);
// Through a unique temporary sibling, fsync and rename (base/durable_file.h).
Status write_device_profile(const std::string& path, const DeviceLatencyProfile& profile);

// <bundle>/device-profile.json
std::string default_device_profile_path(const std::string& bundle_path);
// /proc/cpuinfo's "model name", else cpuinfo's package name, else "unknown CPU"
std::string describe_cpu();

// What a profile must match to stand for a session: exactly the bundle's branch names, the
// session's threads and backend, and this CPU. kInvalidArgument naming the first mismatch.
struct ProfileTarget {
  std::vector<std::string> branches;
  int threads = 1;
  std::string backend;
  std::string cpu;
};
Status check_device_profile(const DeviceLatencyProfile& profile, const ProfileTarget& target);

// Replaces each branch's catalog latency (median, p90, device) and latency_by_threads with the
// profile's (a version-1 profile has none: the loop then does not choose threads).
void apply_device_profile(const DeviceLatencyProfile& profile, std::vector<BranchCosts>* costs);

// Interleaved timing like the exporter's: `warmup` untimed runs of each branch, then `rounds`
// rounds that each run every branch in turn (select(b) untimed, then its share of `runs` timed
// calls of run()), so that a slow drift of the device's speed hits every branch alike.
struct CalibrationOptions {
  int64_t runs = 200;  // timed calls per branch
  int64_t rounds = 5;  // clamped to [1, runs]
  int64_t warmup = 20;
};
Status time_branches_interleaved(size_t branch_count, const CalibrationOptions& options,
                                 const std::function<Status(size_t branch)>& select,
                                 const std::function<Status()>& run,
                                 std::vector<std::vector<double>>* samples_ms);

}  // namespace adascale
