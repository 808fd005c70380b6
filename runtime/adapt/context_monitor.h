// ContextMonitor: reads what the device is doing right now (CPU load, frequency, free memory,
// cgroup limits, pressure, temperature, battery, power) from procfs/sysfs, plus a timing probe of
// cache and memory-bandwidth contention. Every source is optional: a missing or malformed file
// leaves that signal absent instead of failing the sample.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace adascale {

struct CpuFrequency {
  int cpu = 0;
  double cur_khz = 0;
  double max_khz = 0;
};

struct ContextSample {
  double time_ms = 0;  // steady clock of the monitor (or the caller's clock for sample_at)

  // CPU. Utilisations are fractions of all online CPUs over the interval since the previous
  // sample, so they are absent on the first one.
  std::optional<int> cpu_count;                   // "cpuN" lines of /proc/stat
  std::optional<double> cpu_utilization;          // whole system, 0..1
  std::optional<double> process_cpu_utilization;  // this process, 0..1 of all CPUs
  std::optional<double> others_cpu_utilization;   // system minus this process, 0..1
  std::optional<double> procs_running;            // /proc/stat (includes the sampling thread)
  // Threads of this process in state R (/proc/self/task/*/stat), the sampling thread included.
  std::optional<double> own_runnable_threads;
  std::optional<double> loadavg_1, loadavg_5, loadavg_15;
  std::optional<double> loadavg_runnable;  // "R/T" field of /proc/loadavg, R
  std::vector<CpuFrequency> frequencies;
  std::optional<double> frequency_ratio;  // mean of cur/max over CPUs that report both

  // Memory.
  std::optional<uint64_t> mem_total_bytes;
  std::optional<uint64_t> mem_available_bytes;
  int cgroup_version = 0;                             // 0: none found, 1 or 2
  std::optional<uint64_t> cgroup_memory_limit_bytes;  // absent when unlimited ("max")
  std::optional<uint64_t> cgroup_memory_usage_bytes;
  std::optional<double> cgroup_cpu_limit_cores;  // quota / period; absent when unlimited

  // Pressure stall information: share of time (percent) some task stalled, 10 s average.
  std::optional<double> psi_cpu_some_avg10;
  std::optional<double> psi_memory_some_avg10;

  // Thermal, battery, power.
  std::vector<double> temperatures_c;  // one per readable thermal zone
  std::optional<double> max_temperature_c;
  std::optional<double> battery_capacity_pct;
  std::string battery_status;  // "Charging", "Discharging", "Full", ... ("" when absent)
  std::optional<bool> battery_discharging;
  std::optional<double> battery_power_w;    // power_now, or current_now * voltage_now
  std::optional<double> powercap_energy_j;  // sum of top-level powercap zones (cumulative)
  std::optional<double> powercap_power_w;   // from the energy delta since the previous sample

  // Contention probe (run at a lower rate; carried forward between probes).
  std::optional<double> cache_rate;      // r = t2 / t1 of two timed passes, 0.5 when unusable
  std::optional<double> bandwidth_gbps;  // streaming read bandwidth of the probe
  std::optional<double> probe_time_ms;   // when those two were measured

  // others_runnable() of the monitor's previous sample (absent on the first one).
  std::optional<double> previous_others_runnable;

  // Runnable tasks of other processes: procs_running minus this process's runnable threads.
  // Unlike utilisation it measures demand, so it keeps growing once the CPUs are saturated.
  std::optional<double> others_runnable() const;
  // The smaller of others_runnable() and the previous sample's: demand that lasted from one
  // sample to the next. The count is a snapshot, and a task runnable at one instant and gone at
  // the next (a kernel worker, a short-lived process) took no share of the period worth
  // predicting with. Without a previous sample, the snapshot.
  std::optional<double> sustained_others_runnable() const;
  // Memory this process may still allocate: MemAvailable, capped by the cgroup headroom.
  std::optional<uint64_t> available_memory_bytes() const;
  // Measured power: powercap when present, else the battery's draw while discharging.
  std::optional<double> measured_power_w() const;
};

struct ContextMonitorOptions {
  std::string root = "/";            // every path is read under this root (tests use fixture trees)
  double period_ms = 100;            // how often the adaptation loop samples the cheap signals
  double probe_period_ms = 1000;     // how often the cache/bandwidth probe runs; <= 0 disables it
  size_t probe_bytes = 256 << 10;    // cache-rate buffer
  size_t bandwidth_bytes = 4 << 20;  // streaming buffer, also evicts the probe buffer
  int probe_repeats = 3;             // median over this many cache-rate estimates
};

class ContextMonitor {
 public:
  explicit ContextMonitor(ContextMonitorOptions options = {});
  const ContextMonitorOptions& options() const { return options_; }

  // Cheap signals at the steady clock's now, plus the probe when probe_period_ms has elapsed.
  ContextSample sample();
  // Same with an explicit clock (ms) and probe switch, for deterministic tests.
  ContextSample sample_at(double now_ms, bool allow_probe);
  // Runs the cache-rate and bandwidth probe now; later samples carry its result.
  void run_probe(double now_ms);
  // Re-lists thermal zones, batteries, powercap zones, cpufreq and cgroup files (done once at
  // construction; hot-plugged devices need this).
  void discover();

  // The paths the monitor resolved, exposed for diagnostics and tests.
  const std::string& cgroup_memory_limit_path() const { return cg_mem_limit_; }

 private:
  std::string path(const std::string& relative) const;
  void read_proc_stat(double now_ms, ContextSample* s);
  void read_powercap(double now_ms, ContextSample* s);

  ContextMonitorOptions options_;
  // Previous counters for utilisation and power deltas, and the previous runnable count.
  bool have_prev_stat_ = false;
  uint64_t prev_total_ = 0, prev_idle_ = 0, prev_process_ = 0;
  bool have_prev_process_ = false;
  std::optional<double> prev_others_runnable_;
  bool have_prev_energy_ = false;
  double prev_energy_j_ = 0, prev_energy_time_ms_ = 0;
  // Last probe result.
  std::optional<double> cache_rate_, bandwidth_gbps_, probe_time_ms_;
  std::vector<uint64_t> probe_buffer_, bandwidth_buffer_;

  // Discovered files.
  struct CpuFreqFiles {
    int cpu;
    std::string cur, max;
  };
  std::vector<CpuFreqFiles> cpufreq_;
  std::vector<std::string> thermal_temps_;
  std::vector<std::string> powercap_energy_, powercap_range_;
  std::string battery_dir_;
  int cgroup_version_ = 0;
  std::string cg_mem_limit_, cg_mem_usage_, cg_cpu_max_, cg_cfs_quota_, cg_cfs_period_;
};

}  // namespace adascale
