#include "runtime/adapt/context_monitor.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "base/unique_fd.h"

namespace adascale {
namespace {

// Plain POSIX reads: procfs files are small and ifstream costs several times more per open.
bool read_file(const std::string& path, std::string* out) {
  const base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.ok()) return false;
  out->clear();
  char buffer[8192];
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) return false;
    if (n == 0) break;
    out->append(buffer, static_cast<size_t>(n));
    if (out->size() > (1u << 20)) break;  // no legitimate source is this large
  }
  return true;
}

bool parse_double(const char* begin, const char** end, double* value) {
  char* stop = nullptr;
  const double v = std::strtod(begin, &stop);
  if (stop == begin || !std::isfinite(v)) return false;
  *value = v;
  if (end) *end = stop;
  return true;
}

bool parse_u64(const char* begin, const char** end, uint64_t* value) {
  while (*begin == ' ' || *begin == '\t') ++begin;
  if (*begin < '0' || *begin > '9') return false;
  char* stop = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(begin, &stop, 10);
  if (stop == begin || errno == ERANGE) return false;
  *value = v;
  if (end) *end = stop;
  return true;
}

// A file holding one number (sysfs style), surrounding whitespace allowed, nothing else.
bool read_number(const std::string& path, double* value) {
  std::string text;
  if (!read_file(path, &text)) return false;
  const char* end = nullptr;
  if (!parse_double(text.c_str(), &end, value)) return false;
  while (*end == ' ' || *end == '\n' || *end == '\t') ++end;
  return *end == '\0';
}

bool read_u64(const std::string& path, uint64_t* value) {
  std::string text;
  if (!read_file(path, &text)) return false;
  const char* end = nullptr;
  if (!parse_u64(text.c_str(), &end, value)) return false;
  while (*end == ' ' || *end == '\n' || *end == '\t') ++end;
  return *end == '\0';
}

std::string trim(std::string text) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  text.erase(text.begin(), std::find_if(text.begin(), text.end(), not_space));
  text.erase(std::find_if(text.rbegin(), text.rend(), not_space).base(), text.end());
  return text;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  while (const dirent* entry = ::readdir(d)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool file_exists(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

// "some avg10=1.23 avg60=..." -> 1.23
std::optional<double> parse_psi_some_avg10(const std::string& text) {
  const size_t line = text.find("some ");
  if (line == std::string::npos) return std::nullopt;
  const size_t key = text.find("avg10=", line);
  const size_t eol = text.find('\n', line);
  if (key == std::string::npos || (eol != std::string::npos && key > eol)) return std::nullopt;
  double value = 0;
  if (!parse_double(text.c_str() + key + 6, nullptr, &value) || value < 0) return std::nullopt;
  return value;
}

// "MemAvailable:   123456 kB" -> bytes
std::optional<uint64_t> meminfo_field(const std::string& text, const char* key) {
  const std::string field = std::string(key) + ":";
  size_t at = 0;
  if (text.compare(0, field.size(), field) != 0) {
    at = text.find("\n" + field);
    if (at == std::string::npos) return std::nullopt;
    ++at;
  }
  const size_t value_at = at + field.size();
  uint64_t kib = 0;
  const char* end = nullptr;
  if (!parse_u64(text.c_str() + value_at, &end, &kib)) return std::nullopt;
  while (*end == ' ') ++end;
  if (std::strncmp(end, "kB", 2) != 0) return std::nullopt;
  return kib * 1024;
}

// cgroup v1 reports "no limit" as a huge page-aligned number.
constexpr uint64_t kUnlimitedV1 = uint64_t{1} << 60;

uint64_t pass_sum(const uint64_t* data, size_t words) {
  uint64_t sum = 0;
  for (size_t i = 0; i < words; i += 8) sum += data[i];  // one load per 64-byte line
  return sum;
}

double now_ms_steady() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// Keeps the probe's loads alive; per thread so that monitors on different threads do not race.
thread_local volatile uint64_t probe_sink = 0;

double timed_pass(const std::vector<uint64_t>& buffer) {
  const auto start = std::chrono::steady_clock::now();
  const uint64_t sum = pass_sum(buffer.data(), buffer.size());
  const auto stop = std::chrono::steady_clock::now();
  probe_sink = probe_sink + sum;
  return std::chrono::duration<double, std::micro>(stop - start).count();
}

}  // namespace

std::optional<uint64_t> ContextSample::available_memory_bytes() const {
  std::optional<uint64_t> available = mem_available_bytes;
  if (cgroup_memory_limit_bytes && cgroup_memory_usage_bytes) {
    const uint64_t headroom = *cgroup_memory_limit_bytes > *cgroup_memory_usage_bytes
                                  ? *cgroup_memory_limit_bytes - *cgroup_memory_usage_bytes
                                  : 0;
    available = available ? std::min(*available, headroom) : headroom;
  }
  return available;
}

std::optional<double> ContextSample::measured_power_w() const {
  if (powercap_power_w) return powercap_power_w;
  if (battery_discharging.value_or(false) && battery_power_w) return battery_power_w;
  return std::nullopt;
}

ContextMonitor::ContextMonitor(ContextMonitorOptions options) : options_(std::move(options)) {
  if (options_.root.empty()) options_.root = "/";
  discover();
}

std::string ContextMonitor::path(const std::string& relative) const {
  std::string root = options_.root;
  if (root.back() == '/') root.pop_back();
  return root + relative;
}

void ContextMonitor::discover() {
  cpufreq_.clear();
  const std::string cpu_dir = path("/sys/devices/system/cpu");
  for (const std::string& name : list_dir(cpu_dir)) {
    if (name.size() < 4 || name.compare(0, 3, "cpu") != 0) continue;
    if (!std::all_of(name.begin() + 3, name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    const std::string base = cpu_dir + "/" + name + "/cpufreq/";
    if (!file_exists(base + "scaling_cur_freq")) continue;
    cpufreq_.push_back(
        {std::atoi(name.c_str() + 3), base + "scaling_cur_freq", base + "cpuinfo_max_freq"});
  }
  std::sort(cpufreq_.begin(), cpufreq_.end(),
            [](const CpuFreqFiles& a, const CpuFreqFiles& b) { return a.cpu < b.cpu; });

  thermal_temps_.clear();
  const std::string thermal_dir = path("/sys/class/thermal");
  for (const std::string& name : list_dir(thermal_dir))
    if (name.compare(0, 12, "thermal_zone") == 0)
      thermal_temps_.push_back(thermal_dir + "/" + name + "/temp");

  // Top-level powercap zones only ("intel-rapl:0", not its subzone "intel-rapl:0:0"), so that
  // nested zones are not counted twice.
  powercap_energy_.clear();
  powercap_range_.clear();
  const std::string powercap_dir = path("/sys/class/powercap");
  for (const std::string& name : list_dir(powercap_dir)) {
    if (std::count(name.begin(), name.end(), ':') > 1) continue;
    const std::string energy = powercap_dir + "/" + name + "/energy_uj";
    if (!file_exists(energy)) continue;
    powercap_energy_.push_back(energy);
    powercap_range_.push_back(powercap_dir + "/" + name + "/max_energy_range_uj");
  }
  have_prev_energy_ = false;

  battery_dir_.clear();
  const std::string supply_dir = path("/sys/class/power_supply");
  for (const std::string& name : list_dir(supply_dir)) {
    const std::string dir = supply_dir + "/" + name + "/";
    std::string type;
    if (read_file(dir + "type", &type) && trim(type) != "Battery") continue;
    if (file_exists(dir + "capacity") || file_exists(dir + "status")) {
      battery_dir_ = dir;
      break;
    }
  }

  // cgroup: the process's own group from /proc/self/cgroup, falling back to the mount root
  // (inside a container the group path is usually not visible and the root is the container's).
  cgroup_version_ = 0;
  cg_mem_limit_.clear();
  cg_mem_usage_.clear();
  cg_cpu_max_.clear();
  cg_cfs_quota_.clear();
  cg_cfs_period_.clear();
  std::string v2_group, v1_memory_group, v1_cpu_group, v1_cpu_controller = "cpu";
  std::string self_cgroup;
  if (read_file(path("/proc/self/cgroup"), &self_cgroup)) {
    size_t pos = 0;
    while (pos < self_cgroup.size()) {
      size_t eol = self_cgroup.find('\n', pos);
      if (eol == std::string::npos) eol = self_cgroup.size();
      const std::string line = self_cgroup.substr(pos, eol - pos);
      pos = eol + 1;
      const size_t c1 = line.find(':');
      const size_t c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
      if (c2 == std::string::npos) continue;
      const std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
      const std::string group = line.substr(c2 + 1);
      if (line.compare(0, c1, "0") == 0 && controllers.empty()) v2_group = group;
      std::string list = "," + controllers + ",";
      if (list.find(",memory,") != std::string::npos) v1_memory_group = group;
      if (list.find(",cpu,") != std::string::npos) {
        v1_cpu_group = group;
        v1_cpu_controller = controllers;
      }
    }
  }
  auto first_existing = [&](const std::vector<std::string>& candidates) -> std::string {
    for (const std::string& candidate : candidates)
      if (file_exists(candidate)) return candidate;
    return {};
  };
  const std::string cg = path("/sys/fs/cgroup");
  auto in_group = [&](const std::string& mount, const std::string& group, const char* file) {
    std::vector<std::string> candidates;
    if (!group.empty() && group != "/") candidates.push_back(mount + group + "/" + file);
    candidates.push_back(mount + "/" + file);
    return first_existing(candidates);
  };
  cg_mem_limit_ = in_group(cg, v2_group, "memory.max");
  if (!cg_mem_limit_.empty()) {
    cgroup_version_ = 2;
    cg_mem_usage_ = in_group(cg, v2_group, "memory.current");
    cg_cpu_max_ = in_group(cg, v2_group, "cpu.max");
  } else {
    cg_mem_limit_ = in_group(cg + "/memory", v1_memory_group, "memory.limit_in_bytes");
    cg_mem_usage_ = in_group(cg + "/memory", v1_memory_group, "memory.usage_in_bytes");
    for (const std::string& mount :
         {cg + "/" + v1_cpu_controller, cg + "/cpu,cpuacct", cg + "/cpu"}) {
      cg_cfs_quota_ = in_group(mount, v1_cpu_group, "cpu.cfs_quota_us");
      if (!cg_cfs_quota_.empty()) {
        cg_cfs_period_ = in_group(mount, v1_cpu_group, "cpu.cfs_period_us");
        break;
      }
    }
    if (!cg_mem_limit_.empty() || !cg_mem_usage_.empty() || !cg_cfs_quota_.empty())
      cgroup_version_ = 1;
    else
      cg_cpu_max_ = in_group(cg, v2_group, "cpu.max");  // v2 without the memory controller
    if (cgroup_version_ == 0 && !cg_cpu_max_.empty()) cgroup_version_ = 2;
  }
}

void ContextMonitor::read_proc_stat(double now_ms, ContextSample* s) {
  std::string text;
  if (!read_file(path("/proc/stat"), &text)) {
    have_prev_stat_ = false;
    prev_others_runnable_.reset();
    return;
  }
  // First line: "cpu  user nice system idle iowait irq softirq steal guest guest_nice".
  bool have_total = false;
  uint64_t total = 0, idle = 0;
  int cpus = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const char* line = text.c_str() + pos;
    const size_t length = eol - pos;
    pos = eol + 1;
    if (length > 4 && std::strncmp(line, "cpu ", 4) == 0) {
      uint64_t fields[8] = {0};
      const char* cursor = line + 3;
      int parsed = 0;
      for (; parsed < 8; ++parsed)
        if (!parse_u64(cursor, &cursor, &fields[parsed])) break;
      if (parsed >= 4) {  // old kernels have 4 fields
        for (int i = 0; i < parsed; ++i) total += fields[i];
        idle = fields[3] + (parsed > 4 ? fields[4] : 0);  // idle + iowait
        have_total = total > 0;
      }
    } else if (length > 3 && std::strncmp(line, "cpu", 3) == 0 && line[3] >= '0' &&
               line[3] <= '9') {
      ++cpus;
    } else if (length > 14 && std::strncmp(line, "procs_running ", 14) == 0) {
      uint64_t running = 0;
      if (parse_u64(line + 14, nullptr, &running)) s->procs_running = static_cast<double>(running);
    }
  }
  if (cpus > 0) s->cpu_count = cpus;

  // Own runnable threads, read right after procs_running so that both describe one moment.
  if (s->procs_running) {
    const std::string tasks = path("/proc/self/task");
    int runnable = 0, readable = 0;
    std::string stat;
    for (const std::string& tid : list_dir(tasks)) {
      if (!read_file(tasks + "/" + tid + "/stat", &stat)) continue;  // the thread just exited
      const size_t paren = stat.rfind(')');
      if (paren == std::string::npos || paren + 2 >= stat.size()) continue;
      ++readable;
      runnable += stat[paren + 2] == 'R';
    }
    if (readable > 0) s->own_runnable_threads = runnable;
  }
  s->previous_others_runnable = prev_others_runnable_;
  prev_others_runnable_ = s->others_runnable();

  // Own process: utime + stime (fields 14 and 15) in the same clock ticks as /proc/stat.
  std::optional<uint64_t> process;
  std::string self;
  if (read_file(path("/proc/self/stat"), &self)) {
    const size_t paren = self.rfind(')');
    if (paren != std::string::npos) {
      const char* cursor = self.c_str() + paren + 1;
      // Field 3 (state) is a letter; skip it, then fields 4..13.
      while (*cursor == ' ') ++cursor;
      if (*cursor && *cursor != ' ') ++cursor;
      uint64_t value = 0, utime = 0, stime = 0;
      bool ok = true;
      for (int field = 4; field <= 15 && ok; ++field) {
        // ppid etc. may be negative (tty_nr, tpgid): accept a sign there.
        while (*cursor == ' ') ++cursor;
        if (*cursor == '-') ++cursor;
        ok = parse_u64(cursor, &cursor, &value);
        if (field == 14) utime = value;
        if (field == 15) stime = value;
      }
      if (ok) process = utime + stime;
    }
  }

  if (have_total && have_prev_stat_ && total > prev_total_) {
    const double dt = static_cast<double>(total - prev_total_);
    const double didle = idle >= prev_idle_ ? static_cast<double>(idle - prev_idle_) : 0.0;
    const double util = std::clamp(1.0 - didle / dt, 0.0, 1.0);
    s->cpu_utilization = util;
    if (process && have_prev_process_ && *process >= prev_process_) {
      const double proc = std::clamp(static_cast<double>(*process - prev_process_) / dt, 0.0, 1.0);
      s->process_cpu_utilization = proc;
      s->others_cpu_utilization = std::max(0.0, util - proc);
    }
  }
  have_prev_stat_ = have_total;
  prev_total_ = total;
  prev_idle_ = idle;
  have_prev_process_ = process.has_value();
  prev_process_ = process.value_or(0);
  (void)now_ms;
}

void ContextMonitor::read_powercap(double now_ms, ContextSample* s) {
  if (powercap_energy_.empty()) return;
  double joules = 0;
  for (size_t i = 0; i < powercap_energy_.size(); ++i) {
    double uj = 0;
    if (!read_number(powercap_energy_[i], &uj) || uj < 0) {
      have_prev_energy_ = false;  // a partial sum would fake a power drop
      return;
    }
    joules += uj * 1e-6;
  }
  s->powercap_energy_j = joules;
  if (have_prev_energy_ && now_ms > prev_energy_time_ms_) {
    double delta = joules - prev_energy_j_;
    if (delta < 0) {  // a counter wrapped: add its range when known
      double range_total = 0;
      bool ranges = true;
      for (const std::string& range : powercap_range_) {
        double uj = 0;
        ranges = ranges && read_number(range, &uj);
        range_total += uj * 1e-6;
      }
      delta = ranges ? delta + range_total : -1;
    }
    if (delta >= 0) s->powercap_power_w = delta / ((now_ms - prev_energy_time_ms_) * 1e-3);
  }
  have_prev_energy_ = true;
  prev_energy_j_ = joules;
  prev_energy_time_ms_ = now_ms;
}

std::optional<double> ContextSample::others_runnable() const {
  if (!procs_running || !own_runnable_threads) return std::nullopt;
  return std::max(0.0, *procs_running - *own_runnable_threads);
}

std::optional<double> ContextSample::sustained_others_runnable() const {
  const std::optional<double> now = others_runnable();
  if (!now || !previous_others_runnable) return now;
  return std::min(*now, *previous_others_runnable);
}

ContextSample ContextMonitor::sample() {
  const double now = now_ms_steady();
  return sample_at(now, options_.probe_period_ms > 0);
}

ContextSample ContextMonitor::sample_at(double now_ms, bool allow_probe) {
  ContextSample s;
  s.time_ms = now_ms;
  read_proc_stat(now_ms, &s);

  std::string text;
  if (read_file(path("/proc/loadavg"), &text)) {
    // "0.99 0.93 0.54 2/94 12317"
    const char* cursor = text.c_str();
    double l1 = 0, l5 = 0, l15 = 0, running = 0;
    if (parse_double(cursor, &cursor, &l1) && parse_double(cursor, &cursor, &l5) &&
        parse_double(cursor, &cursor, &l15) && l1 >= 0 && l5 >= 0 && l15 >= 0) {
      s.loadavg_1 = l1;
      s.loadavg_5 = l5;
      s.loadavg_15 = l15;
      if (parse_double(cursor, &cursor, &running) && *cursor == '/' && running >= 0)
        s.loadavg_runnable = running;
    }
  }

  double ratio_sum = 0;
  int ratio_count = 0;
  for (const CpuFreqFiles& files : cpufreq_) {
    CpuFrequency f;
    f.cpu = files.cpu;
    if (!read_number(files.cur, &f.cur_khz) || f.cur_khz <= 0) continue;
    if (read_number(files.max, &f.max_khz) && f.max_khz > 0) {
      ratio_sum += std::min(1.0, f.cur_khz / f.max_khz);
      ++ratio_count;
    } else {
      f.max_khz = 0;
    }
    s.frequencies.push_back(f);
  }
  if (ratio_count > 0) s.frequency_ratio = ratio_sum / ratio_count;

  if (read_file(path("/proc/meminfo"), &text)) {
    s.mem_total_bytes = meminfo_field(text, "MemTotal");
    s.mem_available_bytes = meminfo_field(text, "MemAvailable");
  }

  s.cgroup_version = cgroup_version_;
  if (!cg_mem_limit_.empty() && read_file(cg_mem_limit_, &text)) {
    uint64_t limit = 0;
    const std::string value = trim(text);
    if (value != "max" && read_u64(cg_mem_limit_, &limit) && limit < kUnlimitedV1)
      s.cgroup_memory_limit_bytes = limit;
  }
  uint64_t usage = 0;
  if (!cg_mem_usage_.empty() && read_u64(cg_mem_usage_, &usage))
    s.cgroup_memory_usage_bytes = usage;
  if (!cg_cpu_max_.empty() && read_file(cg_cpu_max_, &text)) {
    // "max 100000" or "50000 100000"
    const char* cursor = text.c_str();
    double quota = 0, period = 0;
    if (parse_double(cursor, &cursor, &quota) && parse_double(cursor, &cursor, &period) &&
        quota > 0 && period > 0)
      s.cgroup_cpu_limit_cores = quota / period;
  } else if (!cg_cfs_quota_.empty()) {
    double quota = 0, period = 0;
    if (read_number(cg_cfs_quota_, &quota) && read_number(cg_cfs_period_, &period) && quota > 0 &&
        period > 0)
      s.cgroup_cpu_limit_cores = quota / period;  // -1 quota means unlimited
  }

  if (read_file(path("/proc/pressure/cpu"), &text))
    s.psi_cpu_some_avg10 = parse_psi_some_avg10(text);
  if (read_file(path("/proc/pressure/memory"), &text))
    s.psi_memory_some_avg10 = parse_psi_some_avg10(text);

  for (const std::string& zone : thermal_temps_) {
    double milli = 0;
    // Sensors report -273 C or absurd values when broken; keep plausible ones only.
    if (read_number(zone, &milli) && milli > -50000 && milli < 200000)
      s.temperatures_c.push_back(milli / 1000.0);
  }
  if (!s.temperatures_c.empty())
    s.max_temperature_c = *std::max_element(s.temperatures_c.begin(), s.temperatures_c.end());

  if (!battery_dir_.empty()) {
    double value = 0;
    if (read_number(battery_dir_ + "capacity", &value) && value >= 0 && value <= 100)
      s.battery_capacity_pct = value;
    if (read_file(battery_dir_ + "status", &text)) {
      s.battery_status = trim(text);
      if (!s.battery_status.empty()) s.battery_discharging = s.battery_status == "Discharging";
    }
    double current = 0, voltage = 0;
    if (read_number(battery_dir_ + "power_now", &value) && value >= 0) {
      s.battery_power_w = value * 1e-6;  // microwatts
    } else if (read_number(battery_dir_ + "current_now", &current) &&
               read_number(battery_dir_ + "voltage_now", &voltage) && voltage >= 0) {
      s.battery_power_w = std::fabs(current) * 1e-6 * voltage * 1e-6;  // uA x uV
    }
  }
  read_powercap(now_ms, &s);

  if (allow_probe && options_.probe_period_ms > 0 &&
      (!probe_time_ms_ || now_ms - *probe_time_ms_ >= options_.probe_period_ms))
    run_probe(now_ms);
  s.cache_rate = cache_rate_;
  s.bandwidth_gbps = bandwidth_gbps_;
  s.probe_time_ms = probe_time_ms_;
  return s;
}

void ContextMonitor::run_probe(double now_ms) {
  const size_t probe_words = std::max<size_t>(options_.probe_bytes / 8, 64);
  const size_t stream_words = std::max<size_t>(options_.bandwidth_bytes / 8, probe_words * 4);
  if (probe_buffer_.size() != probe_words) probe_buffer_.assign(probe_words, 1);
  if (bandwidth_buffer_.size() != stream_words) bandwidth_buffer_.assign(stream_words, 2);

  timed_pass(probe_buffer_);  // warm-up: page faults, TLB, code
  std::vector<double> rates;
  double best_stream_us = 0;
  for (int repeat = 0; repeat < std::max(1, options_.probe_repeats); ++repeat) {
    // Streaming the large buffer measures bandwidth and evicts the probe buffer, so the first
    // timed pass over it runs from farther away than the second.
    const double stream_us = timed_pass(bandwidth_buffer_);
    if (stream_us > 0 && (best_stream_us == 0 || stream_us < best_stream_us))
      best_stream_us = stream_us;
    const double t1 = timed_pass(probe_buffer_);
    const double t2 = timed_pass(probe_buffer_);
    const double r = t1 > 0 ? t2 / t1 : 1.0;
    rates.push_back(r > 0 && r < 1 ? r : 0.5);  // 0.5 when the estimate is unusable
  }
  std::sort(rates.begin(), rates.end());
  cache_rate_ = rates[rates.size() / 2];
  if (best_stream_us > 0)
    bandwidth_gbps_ = static_cast<double>(stream_words * 8) / (best_stream_us * 1e3);
  else
    bandwidth_gbps_.reset();
  probe_time_ms_ = now_ms;
}

}  // namespace adascale
