#include "runtime/device_profile.h"

#include <cpuinfo.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "base/durable_file.h"
#include "runtime/catalog_json.h"

namespace adascale {
namespace {

using catalog_json::CatalogError;
using nlohmann::json;

// the deepest legitimate value is a branch entry, three levels down
constexpr int kMaxProfileDepth = 8;
constexpr int kMaxThreads = 1 << 16;
constexpr int64_t kMaxRuns = int64_t{1} << 40;

const json& member(const json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end()) throw CatalogError(where + "'" + key + "' is missing");
  return *it;
}

int64_t get_int(const json& j, const char* key, int64_t lo, int64_t hi, const std::string& where) {
  const json& v = member(j, key, where);
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
    throw CatalogError(where + "'" + key + "' must be an integer in [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "], got " + v.dump());
  return v.get<int64_t>();
}

// a latency: finite and > 0 (0 would make every ratio against it infinite)
double get_ms(const json& j, const char* key, const std::string& where) {
  const json& v = member(j, key, where);
  const double d = v.is_number() ? v.get<double>() : NAN;
  if (!(std::isfinite(d) && d > 0))
    throw CatalogError(where + "'" + key + "' must be a finite latency > 0 ms, got " + v.dump());
  return d;
}

std::string get_string(const json& j, const char* key, const std::string& where) {
  return catalog_json::get_name(member(j, key, where), where + "'" + key + "'");
}

std::string read_first_field(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  // bounded: a procfs file is small, a hostile root is not this function's concern
  for (int i = 0; i < 4096 && std::getline(in, line); ++i) {
    if (line.compare(0, key.size(), key) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const size_t start = line.find_first_not_of(" \t", colon + 1);
    if (start != std::string::npos) return line.substr(start, 256);
  }
  return "";
}

}  // namespace

const BranchLatency* DeviceLatencyProfile::find(const std::string& name) const {
  for (const BranchLatency& b : branches)
    if (b.name == name) return &b;
  return nullptr;
}

void to_json(json& j, const DeviceLatencyProfile& p) {
  json branches = json::array();
  for (const BranchLatency& b : p.branches) {
    json entry = {{"name", b.name},
                  {"median_ms", b.median_ms},
                  {"p90_ms", b.p90_ms},
                  {"kernel", b.kernel},
                  {"runs", b.runs}};
    if (!b.by_threads.empty()) {
      json by = json::array();
      for (const ThreadLatency& t : b.by_threads)
        by.push_back({{"threads", t.threads}, {"median_ms", t.median_ms}, {"p90_ms", t.p90_ms}});
      entry["by_threads"] = std::move(by);
    }
    branches.push_back(std::move(entry));
  }
  j = {{"schema_version", p.schema_version},
       {"kind", kDeviceProfileKind},
       {"cpu", p.cpu},
       {"threads", p.threads},
       {"backend", p.backend},
       {"batch", p.batch},
       {"rounds", p.rounds},
       {"branches", std::move(branches)}};
}

void from_json(const json& j, DeviceLatencyProfile& p) {
  if (!j.is_object()) throw CatalogError("not a JSON object");
  if (get_string(j, "kind", "") != kDeviceProfileKind)
    throw CatalogError("'kind' must be \"" + std::string(kDeviceProfileKind) + "\"");
  p.schema_version = static_cast<int>(get_int(j, "schema_version", 1, 1 << 20, ""));
  if (p.schema_version < kOldestDeviceProfileSchemaVersion ||
      p.schema_version > kDeviceProfileSchemaVersion)
    return;  // the caller reports it
  p.cpu = get_string(j, "cpu", "");
  p.threads = static_cast<int>(get_int(j, "threads", 1, kMaxThreads, ""));
  p.backend = get_string(j, "backend", "");
  if (p.backend != "xnnpack" && p.backend != "xnnpack-plain" && p.backend != "reference")
    throw CatalogError("'backend' must be xnnpack, xnnpack-plain or reference, got '" +
                       p.backend.substr(0, 80) + "'");
  p.batch = get_int(j, "batch", 1, 1 << 20, "");
  p.rounds = get_int(j, "rounds", 1, kMaxRuns, "");
  const json& branches = member(j, "branches", "");
  if (!branches.is_array()) throw CatalogError("'branches' must be an array");
  catalog_json::check_count(branches.size(), catalog_json::kMaxBranches, "'branches'");
  p.branches.clear();
  std::set<std::string> seen;
  for (size_t i = 0; i < branches.size(); ++i) {
    const json& b = branches[i];
    const std::string at = "branches[" + std::to_string(i) + "]";
    if (!b.is_object()) throw CatalogError(at + " must be an object");
    BranchLatency out;
    out.name = get_string(b, "name", at + ": ");
    const std::string where = "branch '" + out.name.substr(0, 80) + "': ";
    if (!seen.insert(out.name).second) throw CatalogError(where + "listed twice");
    out.median_ms = get_ms(b, "median_ms", where);
    out.p90_ms = get_ms(b, "p90_ms", where);
    if (out.p90_ms < out.median_ms) throw CatalogError(where + "'p90_ms' is below 'median_ms'");
    out.kernel = get_string(b, "kernel", where);
    out.runs = get_int(b, "runs", 1, kMaxRuns, where);
    const auto by = b.find("by_threads");
    if (by != b.end()) {
      if (p.schema_version < 2) throw CatalogError(where + "'by_threads' needs schema version 2");
      if (!by->is_array()) throw CatalogError(where + "'by_threads' must be an array");
      // one entry per count from 2 to the profile's threads, in order
      if (by->size() != static_cast<size_t>(p.threads - 1))
        throw CatalogError(where + "'by_threads' must hold the counts 2 to " +
                           std::to_string(p.threads) + ", got " + std::to_string(by->size()) +
                           " entries");
      for (size_t k = 0; k < by->size(); ++k) {
        const json& e = (*by)[k];
        const std::string at = where + "by_threads[" + std::to_string(k) + "]: ";
        if (!e.is_object()) throw CatalogError(at + "must be an object");
        ThreadLatency t;
        t.threads = static_cast<int>(
            get_int(e, "threads", static_cast<int64_t>(k) + 2, static_cast<int64_t>(k) + 2, at));
        t.median_ms = get_ms(e, "median_ms", at);
        t.p90_ms = get_ms(e, "p90_ms", at);
        if (t.p90_ms < t.median_ms) throw CatalogError(at + "'p90_ms' is below 'median_ms'");
        out.by_threads.push_back(t);
      }
    } else if (p.schema_version >= 2 && p.threads > 1) {
      throw CatalogError(where + "'by_threads' is missing (the profile has " +
                         std::to_string(p.threads) + " threads)");
    }
    p.branches.push_back(std::move(out));
  }
}

std::string device_profile_to_text(const DeviceLatencyProfile& profile) {
  return json(profile).dump(1) + "\n";
}

Status parse_device_profile(const std::string& text, const std::string& origin,
                            DeviceLatencyProfile* profile) {
  const std::string where = origin + ": ";
  if (text.size() > kMaxDeviceProfileBytes)
    return error_status(ErrorCode::kFormat,
                        where + "larger than " + std::to_string(kMaxDeviceProfileBytes) + " bytes");
  bool too_deep = false;
  const json j = catalog_json::parse_bounded(text, kMaxProfileDepth, &too_deep);
  if (too_deep) return error_status(ErrorCode::kFormat, where + "nested too deeply");
  if (j.is_discarded()) return error_status(ErrorCode::kFormat, where + "not valid JSON");
  DeviceLatencyProfile parsed;
  try {
    from_json(j, parsed);
  } catch (const CatalogError& e) {
    return error_status(ErrorCode::kFormat, where + e.what());
  } catch (const json::exception& e) {
    return error_status(ErrorCode::kFormat, where + e.what());
  }
  if (parsed.schema_version < kOldestDeviceProfileSchemaVersion ||
      parsed.schema_version > kDeviceProfileSchemaVersion)
    return error_status(ErrorCode::kSchemaVersion,
                        where + "schema version " + std::to_string(parsed.schema_version) +
                            ", this runtime reads " +
                            std::to_string(kOldestDeviceProfileSchemaVersion) + " to " +
                            std::to_string(kDeviceProfileSchemaVersion));
  *profile = std::move(parsed);
  return ok_status();
}

Status read_device_profile(const std::string& path, DeviceLatencyProfile* profile) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status))
    return error_status(ErrorCode::kNotFound, "no device profile at '" + path + "'");
  if (!std::filesystem::is_regular_file(status))
    return error_status(ErrorCode::kIo, "'" + path + "' is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return error_status(ErrorCode::kIo, "cannot read '" + path + "'");
  // one byte past the limit tells a file at the limit from a larger one, without reading more
  std::string text(kMaxDeviceProfileBytes + 1, '\0');
  in.read(&text[0], static_cast<std::streamsize>(text.size()));
  if (in.bad()) return error_status(ErrorCode::kIo, "cannot read '" + path + "'");
  text.resize(static_cast<size_t>(in.gcount()));
  return parse_device_profile(text, path, profile);
}

Status write_device_profile(const std::string& path, const DeviceLatencyProfile& profile) {
  const std::string text = device_profile_to_text(profile);
  base::remove_stale_temps(path);  // what a killed writer left
  std::string error;
  if (!base::write_file_atomic(path, text.data(), text.size(), &error))
    return error_status(ErrorCode::kIo, "cannot write the device profile: " + error);
  return ok_status();
}

std::string default_device_profile_path(const std::string& bundle_path) {
  return (std::filesystem::path(bundle_path) / kDeviceProfileFileName).string();
}

std::string describe_cpu() {
  // the exporter's latency_device starts with the same field, so the two read alike
  std::string name = read_first_field("/proc/cpuinfo", "model name");
  if (name.empty() && cpuinfo_initialize() && cpuinfo_get_packages_count() > 0)
    name = cpuinfo_get_package(0)->name;
  return name.empty() ? "unknown CPU" : name;
}

Status check_device_profile(const DeviceLatencyProfile& p, const ProfileTarget& t) {
  auto refuse = [](const std::string& message) {
    return error_status(ErrorCode::kInvalidArgument, message);
  };
  for (const BranchLatency& b : p.branches)
    if (std::find(t.branches.begin(), t.branches.end(), b.name) == t.branches.end())
      return refuse("branch '" + b.name.substr(0, 80) +
                    "' of the profile is not in this bundle (a profile of another bundle?)");
  for (const std::string& name : t.branches)
    if (!p.find(name)) return refuse("branch '" + name + "' of the bundle is not in the profile");
  if (p.threads != t.threads)
    return refuse("measured with " + std::to_string(p.threads) + " thread(s), this session runs " +
                  std::to_string(t.threads));
  if (p.backend != t.backend)
    return refuse("measured on the " + p.backend + " backend, this session runs " + t.backend);
  if (p.cpu != t.cpu)
    return refuse("measured on '" + p.cpu.substr(0, 80) + "', this CPU is '" + t.cpu + "'");
  return ok_status();
}

void apply_device_profile(const DeviceLatencyProfile& profile, std::vector<BranchCosts>* costs) {
  const std::string device = profile.cpu + ", " + std::to_string(profile.threads) + " thread" +
                             (profile.threads > 1 ? "s" : "") + ", " + profile.backend +
                             " (device profile)";
  for (BranchCosts& c : *costs) {
    const BranchLatency* measured = profile.find(c.name);
    if (!measured) continue;
    c.latency_median_ms = measured->median_ms;
    c.latency_p90_ms = measured->p90_ms;
    c.latency_batch = static_cast<double>(profile.batch);
    c.latency_device = device;
    // the catalog's were measured elsewhere, against latencies this profile replaced
    c.latency_by_threads = measured->by_threads;
  }
}

Status time_branches_interleaved(size_t branch_count, const CalibrationOptions& o,
                                 const std::function<Status(size_t)>& select,
                                 const std::function<Status()>& run,
                                 std::vector<std::vector<double>>* samples_ms) {
  if (o.runs < 1 || o.warmup < 0)
    return error_status(ErrorCode::kInvalidArgument, "calibration needs runs >= 1, warm-up >= 0");
  const int64_t rounds = std::clamp<int64_t>(o.rounds, 1, o.runs);
  samples_ms->assign(branch_count, {});
  Status s;
  for (size_t b = 0; b < branch_count; ++b) {
    (*samples_ms)[b].reserve(static_cast<size_t>(o.runs));
    if (!(s = select(b)).ok()) return s;
    for (int64_t k = 0; k < o.warmup; ++k)
      if (!(s = run()).ok()) return s;
  }
  using Clock = std::chrono::steady_clock;
  for (int64_t round = 0; round < rounds; ++round) {
    // the runs split evenly, the remainder in the first rounds (as the exporter does)
    const int64_t runs = o.runs / rounds + (round < o.runs % rounds ? 1 : 0);
    for (size_t b = 0; b < branch_count; ++b) {
      if (!(s = select(b)).ok()) return s;
      for (int64_t k = 0; k < runs; ++k) {
        const auto start = Clock::now();
        if (!(s = run()).ok()) return s;
        (*samples_ms)[b].push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      }
    }
  }
  return ok_status();
}

}  // namespace adascale
