// Fixture trees for the adaptation tests: a fake "/" holding only the procfs/sysfs files a test
// writes, so the monitor's parsing is tested without depending on the machine.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace adascale::testing {

class FixtureRoot {
 public:
  explicit FixtureRoot(const std::string& name) {
    static int counter = 0;
    root_ =
        std::filesystem::temp_directory_path() / ("adascale_adapt_" + std::to_string(::getpid()) +
                                                  "_" + name + "_" + std::to_string(counter++));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  ~FixtureRoot() {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  FixtureRoot(const FixtureRoot&) = delete;
  FixtureRoot& operator=(const FixtureRoot&) = delete;

  std::string root() const { return root_.string(); }
  void write(const std::string& relative, const std::string& content) const {
    const std::filesystem::path file = root_ / relative;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary | std::ios::trunc) << content;
  }
  void remove(const std::string& relative) const { std::filesystem::remove_all(root_ / relative); }

  // A plausible two-CPU machine with every source present.
  void write_full_machine() const {
    write("proc/stat",
          "cpu  1000 0 500 8000 100 0 0 0 0 0\n"
          "cpu0 500 0 250 4000 50 0 0 0 0 0\n"
          "cpu1 500 0 250 4000 50 0 0 0 0 0\n"
          "intr 12345\nctxt 999\nprocs_running 3\nprocs_blocked 0\n");
    write_self_stat(100, 50);
    write("proc/loadavg", "1.50 0.75 0.25 3/120 4242\n");
    write("proc/meminfo",
          "MemTotal:        8000000 kB\nMemFree:         1000000 kB\n"
          "MemAvailable:    4000000 kB\nBuffers:           1000 kB\n");
    write("proc/pressure/cpu",
          "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\n"
          "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
    write("proc/pressure/memory",
          "some avg10=2.25 avg60=1.00 avg300=0.50 total=55\n"
          "full avg10=1.00 avg60=0.00 avg300=0.00 total=0\n");
    write("proc/self/cgroup", "0::/app.slice\n");
    write("sys/fs/cgroup/app.slice/memory.max", "2147483648\n");
    write("sys/fs/cgroup/app.slice/memory.current", "1073741824\n");
    write("sys/fs/cgroup/app.slice/cpu.max", "150000 100000\n");
    write("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "1200000\n");
    write("sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "2400000\n");
    write("sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq", "2400000\n");
    write("sys/devices/system/cpu/cpu1/cpufreq/cpuinfo_max_freq", "2400000\n");
    write("sys/class/thermal/thermal_zone0/temp", "45000\n");
    write("sys/class/thermal/thermal_zone1/temp", "61500\n");
    write("sys/class/power_supply/AC/type", "Mains\n");
    write("sys/class/power_supply/AC/online", "0\n");
    write("sys/class/power_supply/BAT0/type", "Battery\n");
    write("sys/class/power_supply/BAT0/capacity", "42\n");
    write("sys/class/power_supply/BAT0/status", "Discharging\n");
    write("sys/class/power_supply/BAT0/power_now", "7500000\n");
    write("sys/class/powercap/intel-rapl:0/energy_uj", "1000000\n");
    write("sys/class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n");
    write("sys/class/powercap/intel-rapl:0:0/energy_uj", "500000\n");
  }
  // /proc/self/stat with the given utime and stime (fields 14 and 15); the command name holds
  // a space and a parenthesis on purpose.
  void write_self_stat(unsigned long utime, unsigned long stime) const {
    write("proc/self/stat", "4242 (my (app) x) R 1 4242 4242 0 -1 4194560 100 0 0 0 " +
                                std::to_string(utime) + " " + std::to_string(stime) +
                                " 0 0 20 0 3 0 100 1000000 200 18446744073709551615\n");
  }

 private:
  std::filesystem::path root_;
};

}  // namespace adascale::testing
