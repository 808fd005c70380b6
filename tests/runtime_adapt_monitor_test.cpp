// ContextMonitor: every signal parsed from fixture trees, plus missing and malformed sources.
#include <gtest/gtest.h>

#include <optional>

#include "runtime/adapt/context_monitor.h"
#include "runtime_adapt_test_util.h"

namespace adascale {
namespace {

using testing::FixtureRoot;

ContextMonitorOptions fixture_options(const FixtureRoot& fixture) {
  ContextMonitorOptions options;
  options.root = fixture.root();
  options.probe_period_ms = 0;  // the probe times this machine, not the fixture
  return options;
}

TEST(ContextMonitorTest, ParsesEverySignalOfAFullMachine) {
  FixtureRoot fixture("full");
  fixture.write_full_machine();
  ContextMonitor monitor(fixture_options(fixture));

  const ContextSample first = monitor.sample_at(1000, false);
  ASSERT_TRUE(first.cpu_count);
  EXPECT_EQ(*first.cpu_count, 2);
  EXPECT_FALSE(first.cpu_utilization);  // needs two samples
  EXPECT_FALSE(first.process_cpu_utilization);
  ASSERT_TRUE(first.procs_running);
  EXPECT_EQ(*first.procs_running, 3);
  ASSERT_TRUE(first.loadavg_1 && first.loadavg_5 && first.loadavg_15 && first.loadavg_runnable);
  EXPECT_DOUBLE_EQ(*first.loadavg_1, 1.5);
  EXPECT_DOUBLE_EQ(*first.loadavg_5, 0.75);
  EXPECT_DOUBLE_EQ(*first.loadavg_15, 0.25);
  EXPECT_DOUBLE_EQ(*first.loadavg_runnable, 3);
  ASSERT_EQ(first.frequencies.size(), 2u);
  EXPECT_EQ(first.frequencies[0].cpu, 0);
  EXPECT_DOUBLE_EQ(first.frequencies[0].cur_khz, 1200000);
  EXPECT_DOUBLE_EQ(first.frequencies[0].max_khz, 2400000);
  ASSERT_TRUE(first.frequency_ratio);
  EXPECT_DOUBLE_EQ(*first.frequency_ratio, 0.75);
  ASSERT_TRUE(first.mem_total_bytes && first.mem_available_bytes);
  EXPECT_EQ(*first.mem_total_bytes, 8000000ull * 1024);
  EXPECT_EQ(*first.mem_available_bytes, 4000000ull * 1024);
  EXPECT_EQ(first.cgroup_version, 2);
  ASSERT_TRUE(first.cgroup_memory_limit_bytes && first.cgroup_memory_usage_bytes);
  EXPECT_EQ(*first.cgroup_memory_limit_bytes, 2147483648ull);
  EXPECT_EQ(*first.cgroup_memory_usage_bytes, 1073741824ull);
  ASSERT_TRUE(first.cgroup_cpu_limit_cores);
  EXPECT_DOUBLE_EQ(*first.cgroup_cpu_limit_cores, 1.5);
  // The cgroup headroom (1 GiB) is tighter than MemAvailable.
  ASSERT_TRUE(first.available_memory_bytes());
  EXPECT_EQ(*first.available_memory_bytes(), 1073741824ull);
  ASSERT_TRUE(first.psi_cpu_some_avg10 && first.psi_memory_some_avg10);
  EXPECT_DOUBLE_EQ(*first.psi_cpu_some_avg10, 12.5);
  EXPECT_DOUBLE_EQ(*first.psi_memory_some_avg10, 2.25);
  ASSERT_EQ(first.temperatures_c.size(), 2u);
  EXPECT_DOUBLE_EQ(*first.max_temperature_c, 61.5);
  ASSERT_TRUE(first.battery_capacity_pct && first.battery_discharging && first.battery_power_w);
  EXPECT_DOUBLE_EQ(*first.battery_capacity_pct, 42);
  EXPECT_EQ(first.battery_status, "Discharging");
  EXPECT_TRUE(*first.battery_discharging);
  EXPECT_DOUBLE_EQ(*first.battery_power_w, 7.5);
  ASSERT_TRUE(first.powercap_energy_j);
  EXPECT_DOUBLE_EQ(*first.powercap_energy_j, 1.0);  // the subzone is not added
  EXPECT_FALSE(first.powercap_power_w);
  // Without powercap power, the battery's draw is the measured power.
  ASSERT_TRUE(first.measured_power_w());
  EXPECT_DOUBLE_EQ(*first.measured_power_w(), 7.5);
  EXPECT_FALSE(first.cache_rate);

  // 1400 ticks later: 800 busy, 250 of them this process's; 2 J in one second.
  fixture.write("proc/stat",
                "cpu  1600 0 700 8600 100 0 0 0 0 0\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n"
                "procs_running 1\n");
  fixture.write_self_stat(300, 100);
  fixture.write("sys/class/powercap/intel-rapl:0/energy_uj", "3000000\n");
  const ContextSample second = monitor.sample_at(2000, false);
  ASSERT_TRUE(second.cpu_utilization && second.process_cpu_utilization &&
              second.others_cpu_utilization);
  EXPECT_NEAR(*second.cpu_utilization, 800.0 / 1400, 1e-9);
  EXPECT_NEAR(*second.process_cpu_utilization, 250.0 / 1400, 1e-9);
  EXPECT_NEAR(*second.others_cpu_utilization, 550.0 / 1400, 1e-9);
  ASSERT_TRUE(second.powercap_power_w);
  EXPECT_NEAR(*second.powercap_power_w, 2.0, 1e-9);
  EXPECT_NEAR(*second.measured_power_w(), 2.0, 1e-9);  // powercap wins over the battery
}

TEST(ContextMonitorTest, CountsOwnRunnableThreadsAgainstTheRunQueue) {
  FixtureRoot fixture("tasks");
  fixture.write_full_machine();  // procs_running 3
  // Two of our three threads are runnable; the command names hold spaces and parentheses.
  fixture.write("proc/self/task/10/stat", "10 (main (x) y) R 1 10 10 0 -1\n");
  fixture.write("proc/self/task/11/stat", "11 (loop) S 1 10 10 0 -1\n");
  fixture.write("proc/self/task/12/stat", "12 (run) R 1 10 10 0 -1\n");
  fixture.write("proc/self/task/13/stat", "garbage\n");  // ignored
  ContextMonitor monitor(fixture_options(fixture));
  const ContextSample s = monitor.sample_at(0, false);
  ASSERT_TRUE(s.own_runnable_threads);
  EXPECT_EQ(*s.own_runnable_threads, 2);
  ASSERT_TRUE(s.others_runnable());
  EXPECT_EQ(*s.others_runnable(), 1);

  EXPECT_FALSE(s.previous_others_runnable);  // the first sample has none
  EXPECT_EQ(s.sustained_others_runnable(), std::optional<double>(1));

  // A snapshot with two more runnable tasks: the next sample carries the one before it, and the
  // sustained count is the smaller of the two, until the rise is seen twice.
  fixture.write("proc/stat",
                "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 0 1 1\ncpu1 1 0 1 1\n"
                "procs_running 5\n");
  const ContextSample spike = monitor.sample_at(50, false);
  EXPECT_EQ(spike.others_runnable(), std::optional<double>(3));
  EXPECT_EQ(spike.previous_others_runnable, std::optional<double>(1));
  EXPECT_EQ(spike.sustained_others_runnable(), std::optional<double>(1));
  const ContextSample held = monitor.sample_at(100, false);
  EXPECT_EQ(held.sustained_others_runnable(), std::optional<double>(3));

  // An unreadable /proc/stat forgets the previous count: the next one counts at once.
  fixture.remove("proc/stat");
  EXPECT_FALSE(monitor.sample_at(150, false).others_runnable());
  fixture.write("proc/stat",
                "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 0 1 1\ncpu1 1 0 1 1\n"
                "procs_running 5\n");
  const ContextSample back = monitor.sample_at(200, false);
  EXPECT_FALSE(back.previous_others_runnable);
  EXPECT_EQ(back.sustained_others_runnable(), std::optional<double>(3));

  // No task directory: the own count, and so the others' runnable count, is absent.
  fixture.remove("proc/self/task");
  EXPECT_FALSE(ContextMonitor(fixture_options(fixture)).sample_at(0, false).own_runnable_threads);
}

TEST(ContextMonitorTest, EmptyRootLeavesEverySignalAbsent) {
  FixtureRoot fixture("empty");
  ContextMonitor monitor(fixture_options(fixture));
  for (double t : {0.0, 100.0}) {
    const ContextSample s = monitor.sample_at(t, false);
    EXPECT_FALSE(s.cpu_count);
    EXPECT_FALSE(s.cpu_utilization);
    EXPECT_FALSE(s.process_cpu_utilization);
    EXPECT_FALSE(s.procs_running);
    EXPECT_FALSE(s.loadavg_1);
    EXPECT_TRUE(s.frequencies.empty());
    EXPECT_FALSE(s.frequency_ratio);
    EXPECT_FALSE(s.mem_total_bytes);
    EXPECT_FALSE(s.mem_available_bytes);
    EXPECT_FALSE(s.available_memory_bytes());
    EXPECT_EQ(s.cgroup_version, 0);
    EXPECT_FALSE(s.cgroup_memory_limit_bytes);
    EXPECT_FALSE(s.cgroup_memory_usage_bytes);
    EXPECT_FALSE(s.cgroup_cpu_limit_cores);
    EXPECT_FALSE(s.psi_cpu_some_avg10);
    EXPECT_FALSE(s.psi_memory_some_avg10);
    EXPECT_FALSE(s.max_temperature_c);
    EXPECT_FALSE(s.battery_capacity_pct);
    EXPECT_FALSE(s.battery_discharging);
    EXPECT_FALSE(s.battery_power_w);
    EXPECT_FALSE(s.powercap_energy_j);
    EXPECT_FALSE(s.measured_power_w());
    EXPECT_FALSE(s.cache_rate);
  }
}

TEST(ContextMonitorTest, MalformedFilesLeaveSignalsAbsent) {
  FixtureRoot fixture("malformed");
  fixture.write_full_machine();
  fixture.write("proc/stat", "cpu  x y z\nprocs_running many\n");
  fixture.write("proc/self/stat", "garbage");
  fixture.write("proc/loadavg", "high\n");
  fixture.write("proc/meminfo", "MemTotal: lots kB\nMemAvailable: 12 MB\n");
  fixture.write("proc/pressure/cpu", "some avg10=abc\n");
  fixture.write("proc/pressure/memory", "full avg10=1.0\n");
  fixture.write("sys/fs/cgroup/app.slice/memory.max", "two gigs\n");
  fixture.write("sys/fs/cgroup/app.slice/memory.current", "-5\n");
  fixture.write("sys/fs/cgroup/app.slice/cpu.max", "fast\n");
  fixture.write("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "\n");
  fixture.write("sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq", "1.2 GHz\n");
  fixture.write("sys/class/thermal/thermal_zone0/temp", "hot\n");
  fixture.write("sys/class/thermal/thermal_zone1/temp", "-273000\n");  // broken sensor
  fixture.write("sys/class/power_supply/BAT0/capacity", "142\n");
  fixture.write("sys/class/power_supply/BAT0/status", "\n");
  fixture.write("sys/class/power_supply/BAT0/power_now", "n/a\n");
  fixture.write("sys/class/powercap/intel-rapl:0/energy_uj", "lots\n");
  ContextMonitor monitor(fixture_options(fixture));
  monitor.sample_at(0, false);
  const ContextSample s = monitor.sample_at(100, false);
  EXPECT_FALSE(s.cpu_count);
  EXPECT_FALSE(s.cpu_utilization);
  EXPECT_FALSE(s.procs_running);
  EXPECT_FALSE(s.process_cpu_utilization);
  EXPECT_FALSE(s.loadavg_1);
  EXPECT_FALSE(s.mem_total_bytes);
  EXPECT_FALSE(s.mem_available_bytes);
  EXPECT_FALSE(s.psi_cpu_some_avg10);
  EXPECT_FALSE(s.psi_memory_some_avg10);
  EXPECT_FALSE(s.cgroup_memory_limit_bytes);
  EXPECT_FALSE(s.cgroup_memory_usage_bytes);
  EXPECT_FALSE(s.cgroup_cpu_limit_cores);
  EXPECT_TRUE(s.frequencies.empty());
  EXPECT_FALSE(s.frequency_ratio);
  EXPECT_TRUE(s.temperatures_c.empty());
  EXPECT_FALSE(s.max_temperature_c);
  EXPECT_FALSE(s.battery_capacity_pct);
  EXPECT_FALSE(s.battery_discharging);
  EXPECT_FALSE(s.battery_power_w);
  EXPECT_FALSE(s.powercap_energy_j);
  EXPECT_FALSE(s.powercap_power_w);
}

TEST(ContextMonitorTest, CgroupV1LimitsAndUnlimitedValues) {
  FixtureRoot fixture("v1");
  fixture.write("proc/self/cgroup", "5:memory:/grp\n3:cpu,cpuacct:/grp\n0::/\n");
  fixture.write("sys/fs/cgroup/memory/grp/memory.limit_in_bytes", "536870912\n");
  fixture.write("sys/fs/cgroup/memory/grp/memory.usage_in_bytes", "134217728\n");
  fixture.write("sys/fs/cgroup/cpu,cpuacct/grp/cpu.cfs_quota_us", "50000\n");
  fixture.write("sys/fs/cgroup/cpu,cpuacct/grp/cpu.cfs_period_us", "100000\n");
  fixture.write("proc/meminfo", "MemTotal: 4000000 kB\nMemAvailable: 3000000 kB\n");
  {
    ContextMonitor monitor(fixture_options(fixture));
    const ContextSample s = monitor.sample_at(0, false);
    EXPECT_EQ(s.cgroup_version, 1);
    ASSERT_TRUE(s.cgroup_memory_limit_bytes && s.cgroup_memory_usage_bytes &&
                s.cgroup_cpu_limit_cores);
    EXPECT_EQ(*s.cgroup_memory_limit_bytes, 536870912ull);
    EXPECT_EQ(*s.cgroup_memory_usage_bytes, 134217728ull);
    EXPECT_DOUBLE_EQ(*s.cgroup_cpu_limit_cores, 0.5);
    EXPECT_EQ(*s.available_memory_bytes(), 536870912ull - 134217728ull);
  }
  // v1 spells "no limit" as a huge number and a quota of -1; a group path that is not mounted
  // (inside a container) falls back to the mount root.
  fixture.remove("sys/fs/cgroup");
  fixture.write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  fixture.write("sys/fs/cgroup/memory/memory.usage_in_bytes", "1000\n");
  fixture.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  fixture.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  ContextMonitor monitor(fixture_options(fixture));
  const ContextSample s = monitor.sample_at(0, false);
  EXPECT_EQ(s.cgroup_version, 1);
  EXPECT_FALSE(s.cgroup_memory_limit_bytes);
  ASSERT_TRUE(s.cgroup_memory_usage_bytes);
  EXPECT_EQ(*s.cgroup_memory_usage_bytes, 1000u);
  EXPECT_FALSE(s.cgroup_cpu_limit_cores);
  EXPECT_EQ(*s.available_memory_bytes(), 3000000ull * 1024);
}

TEST(ContextMonitorTest, CgroupV2MaxMeansUnlimited) {
  FixtureRoot fixture("v2max");
  fixture.write("sys/fs/cgroup/memory.max", "max\n");
  fixture.write("sys/fs/cgroup/memory.current", "4096\n");
  fixture.write("sys/fs/cgroup/cpu.max", "max 100000\n");
  ContextMonitor monitor(fixture_options(fixture));
  const ContextSample s = monitor.sample_at(0, false);
  EXPECT_EQ(s.cgroup_version, 2);
  EXPECT_FALSE(s.cgroup_memory_limit_bytes);
  ASSERT_TRUE(s.cgroup_memory_usage_bytes);
  EXPECT_EQ(*s.cgroup_memory_usage_bytes, 4096u);
  EXPECT_FALSE(s.cgroup_cpu_limit_cores);
}

TEST(ContextMonitorTest, BatteryPowerFromCurrentAndVoltage) {
  FixtureRoot fixture("battery");
  fixture.write("sys/class/power_supply/battery/capacity", "80\n");
  fixture.write("sys/class/power_supply/battery/status", "Charging\n");
  fixture.write("sys/class/power_supply/battery/current_now", "-500000\n");  // 0.5 A
  fixture.write("sys/class/power_supply/battery/voltage_now", "4000000\n");  // 4 V
  ContextMonitor monitor(fixture_options(fixture));
  const ContextSample s = monitor.sample_at(0, false);
  ASSERT_TRUE(s.battery_power_w && s.battery_discharging);
  EXPECT_NEAR(*s.battery_power_w, 2.0, 1e-12);
  EXPECT_FALSE(*s.battery_discharging);
  EXPECT_FALSE(s.measured_power_w());  // a charging battery's current says nothing of our draw
}

TEST(ContextMonitorTest, PowercapCounterWrapUsesTheRange) {
  FixtureRoot fixture("wrap");
  fixture.write("sys/class/powercap/intel-rapl:0/energy_uj", "9000000\n");
  fixture.write("sys/class/powercap/intel-rapl:0/max_energy_range_uj", "10000000\n");
  ContextMonitor monitor(fixture_options(fixture));
  monitor.sample_at(0, false);
  fixture.write("sys/class/powercap/intel-rapl:0/energy_uj", "1000000\n");  // wrapped: +2 J
  const ContextSample s = monitor.sample_at(500, false);
  ASSERT_TRUE(s.powercap_power_w);
  EXPECT_NEAR(*s.powercap_power_w, 4.0, 1e-9);
}

TEST(ContextMonitorTest, ProbeMeasuresCacheRateAndBandwidthAtItsOwnRate) {
  FixtureRoot fixture("probe");
  ContextMonitorOptions options = fixture_options(fixture);
  options.probe_period_ms = 1000;
  options.bandwidth_bytes = 1 << 20;
  ContextMonitor monitor(options);
  const ContextSample first = monitor.sample_at(0, true);
  ASSERT_TRUE(first.cache_rate && first.bandwidth_gbps && first.probe_time_ms);
  EXPECT_GT(*first.cache_rate, 0.0);
  EXPECT_LT(*first.cache_rate, 1.0);
  EXPECT_GT(*first.bandwidth_gbps, 0.0);
  EXPECT_EQ(*first.probe_time_ms, 0.0);
  // Within the probe period the result is carried forward, not re-measured.
  const ContextSample second = monitor.sample_at(500, true);
  ASSERT_TRUE(second.probe_time_ms);
  EXPECT_EQ(*second.probe_time_ms, 0.0);
  EXPECT_EQ(*second.cache_rate, *first.cache_rate);
  const ContextSample third = monitor.sample_at(1200, true);
  EXPECT_EQ(*third.probe_time_ms, 1200.0);
}

TEST(ContextMonitorTest, LiveSystemSampleIsSane) {
  ContextMonitorOptions options;
  options.probe_period_ms = 0;
  ContextMonitor monitor(options);
  monitor.sample();
  const ContextSample s = monitor.sample();
  ASSERT_TRUE(s.cpu_count);  // Linux always has /proc/stat
  EXPECT_GE(*s.cpu_count, 1);
  ASSERT_TRUE(s.mem_available_bytes);
  EXPECT_GT(*s.mem_available_bytes, 0u);
  if (s.cpu_utilization) {
    EXPECT_GE(*s.cpu_utilization, 0.0);
    EXPECT_LE(*s.cpu_utilization, 1.0);
  }
}

}  // namespace
}  // namespace adascale
