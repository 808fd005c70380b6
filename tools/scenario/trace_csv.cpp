#include "tools/scenario/trace_csv.h"

#include <cmath>

#include "tools/scenario/text_format.h"

namespace adascale::scenario {
namespace {

std::string csv_number(double v, const char* fmt = "%.4f") {
  if (std::isnan(v)) return "";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return format(fmt, v);
}

}  // namespace

std::string trace_csv(const std::vector<TraceRow>& rows, const Scenario& s, const Workload& w) {
  std::string out =
      "time_s,burners,balloon_mib,budget_latency_ms,budget_memory_mib,budget_energy_mj,"
      "cpu_utilization,others_cpu_utilization,procs_running,mem_available_mib,cache_rate,branch,"
      "predicted_ms,predicted_tail_ms,predicted_uncorrected_ms,observed_ms,images,correct,"
      "violation,memory_violation,energy_mj,threads\n";
  for (const TraceRow& r : rows) {
    const ContextRow* c = r.context;
    out += csv_number(r.frame->start_ms / 1000, "%.4f") + "," + std::to_string(r.state->burners) +
           "," + csv_number(r.state->balloon_mib, "%.1f") + "," + csv_number(r.budget_ms, "%.3f") +
           "," + csv_number(r.memory_limit_mib, "%.3f") + "," +
           csv_number(r.state->budgets.energy_mj, "%.4f") + "," +
           csv_number(c ? c->cpu : kNaN, "%.3f") + "," + csv_number(c ? c->others : kNaN, "%.3f") +
           "," + csv_number(c ? c->procs_running : kNaN, "%.0f") + "," +
           csv_number(c ? c->available_mib : kNaN, "%.1f") + "," +
           csv_number(c ? c->cache_rate : kNaN, "%.3f") + "," +
           w.costs[static_cast<size_t>(r.frame->branch)].name + "," +
           csv_number(r.predicted_ms, "%.4f") + "," + csv_number(r.predicted_tail_ms, "%.4f") +
           "," + csv_number(r.predicted_uncorrected_ms, "%.4f") + "," +
           csv_number(r.frame->ms, "%.4f") + "," + std::to_string(s.frame_images) + "," +
           std::to_string(r.frame->correct) + "," + (r.violation ? "1" : "0") + "," +
           (r.memory_violation ? "1" : "0") + "," + csv_number(r.energy_mj, "%.5f") + "," +
           std::to_string(r.frame->threads > 0 ? r.frame->threads : w.threads) + "\n";
  }
  return out;
}

}  // namespace adascale::scenario
