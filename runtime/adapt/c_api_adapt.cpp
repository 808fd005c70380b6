// C API of the adaptation loop (the functions after "Automated adaptation loop" in adascale.h).
// The loop lives in the session's adapt slot; it copies the catalog costs, so it never touches
// the model or the session's branches and its thread cannot race the run path.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>

#include "adascale.h"
#include "runtime/adapt/adaptation_loop.h"
#include "runtime/adapt/period_schedule.h"
#include "runtime/c_api_guard.h"

namespace {

using adascale::AdaptationLoop;

struct AdaptState {
  adascale_adapt_options options{};
  std::string context_root;  // owns the string options.context_root points to
  adascale::Budgets budgets;
  adascale_switch_callback callback = nullptr;
  void* user_data = nullptr;
  std::unique_ptr<AdaptationLoop> loop;
};

using adascale::in_switch_callback;

// marks this thread as inside a switch callback for the callback's duration
struct CallbackScope {
  CallbackScope() { ++adascale::switch_callback_depth; }
  ~CallbackScope() { --adascale::switch_callback_depth; }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;
};

AdaptState* state_of(const adascale_session* session) {
  auto& slot = adascale::adapt_state_slot(const_cast<adascale_session*>(session));
  return static_cast<AdaptState*>(slot.get());
}

void install_callback(AdaptState* state) {
  if (!state->callback) {
    state->loop->set_switch_callback(nullptr);
    return;
  }
  const adascale_switch_callback callback = state->callback;
  void* const user_data = state->user_data;
  // Names point into the loop, which outlives every event it delivers (until close/configure).
  const AdaptationLoop* loop = state->loop.get();
  state->loop->set_switch_callback([callback, user_data, loop](const adascale::SwitchEvent& e) {
    adascale_switch_event event;
    event.time_ms = e.time_ms;
    event.from = e.from >= 0 ? loop->branch_name(static_cast<size_t>(e.from)).c_str() : nullptr;
    event.to = loop->branch_name(static_cast<size_t>(e.to)).c_str();
    event.reason = adascale::switch_reason_name(e.reason);
    event.nothing_fits = e.nothing_fits ? 1 : 0;
    event.predicted_ms = e.predicted_ms;
    event.observed_ms = e.observed_ms;
    event.from_threads = e.from_threads;
    event.to_threads = e.to_threads;
    CallbackScope scope;
    callback(&event, user_data);
  });
}

// Builds the loop from the catalog costs, with the latencies of the session's device profile when
// it uses one (runtime/latency_source.h). Costs that do not parse count as empty: the selector
// then treats that branch's costs as unknown instead of refusing the whole bundle.
void build_loop(adascale_session* session, AdaptState* state) {
  std::vector<adascale::BranchCosts> branches = adascale::loop_branch_costs(session);
  adascale::AdaptationOptions options;
  const adascale_adapt_options& o = state->options;
  options.monitor.root = state->context_root.empty() ? "/" : state->context_root;
  options.monitor.period_ms = o.period_ms;
  options.monitor.probe_period_ms = o.probe_period_ms;
  options.selector.min_dwell_ms = o.min_dwell_ms;
  options.selector.switch_margin = o.switch_margin;
  options.selector.entry_margin = o.entry_margin;
  options.device.inference_threads = o.inference_threads;
  options.selector.tail_latency = o.tail_latency != 0;
  options.device.tail_quantile = o.tail_quantile;
  options.selector.trial_window_ms = o.trial_window_ms;
  options.selector.objective_tolerance = o.objective_tolerance;
  options.selector.context_change = o.context_change;
  options.selector.context_settle_ms = o.context_settle_ms;
  options.device.contended_tail_prior = o.contended_tail_prior;
  options.period_jitter = o.period_jitter;
  options.device.sustained_runnable = o.sustained_runnable != 0;
  options.max_threads = adascale::session_model_threads(session);
  state->loop.reset();  // stops the old thread first
  state->loop = std::make_unique<AdaptationLoop>(std::move(branches), options);
  state->loop->set_budgets(state->budgets);
  install_callback(state);
}

// The same ranges as the scenario keys of the same names (docs/scenarios.md). Empty when every
// option is in range, else a one-line message naming the first one that is not.
std::string check_options(const adascale_adapt_options& o) {
  const auto in = [](double v, double lo, double hi) {
    return std::isfinite(v) && v >= lo && v <= hi;
  };
  const double inf = std::numeric_limits<double>::max();
  struct Check {
    bool ok;
    const char* name;
    double value;
    const char* range;
  };
  const Check checks[] = {
      {in(o.period_ms, 0, inf) && o.period_ms > 0, "period_ms", o.period_ms, "> 0"},
      {std::isfinite(o.probe_period_ms), "probe_period_ms", o.probe_period_ms,
       "finite; <= 0 disables it"},
      {in(o.min_dwell_ms, 0, inf), "min_dwell_ms", o.min_dwell_ms, ">= 0"},
      {in(o.switch_margin, 0, inf), "switch_margin", o.switch_margin, ">= 0"},
      {in(o.entry_margin, 0, 1) && o.entry_margin < 1, "entry_margin", o.entry_margin, "in [0, 1)"},
      {o.inference_threads >= 1, "inference_threads", static_cast<double>(o.inference_threads),
       ">= 1"},
      {o.tail_latency == 0 || o.tail_latency == 1, "tail_latency",
       static_cast<double>(o.tail_latency), "0 or 1"},
      {in(o.tail_quantile, 0.5, 1), "tail_quantile", o.tail_quantile, "in [0.5, 1]"},
      {in(o.trial_window_ms, 0, inf), "trial_window_ms", o.trial_window_ms, ">= 0"},
      {in(o.objective_tolerance, 0, 1), "objective_tolerance", o.objective_tolerance, "in [0, 1]"},
      {o.context_change == 0 || (in(o.context_change, 1, inf) && o.context_change > 1),
       "context_change", o.context_change, "0 or > 1"},
      {in(o.context_settle_ms, 0, inf), "context_settle_ms", o.context_settle_ms, ">= 0"},
      {in(o.contended_tail_prior, 1, inf), "contended_tail_prior", o.contended_tail_prior, ">= 1"},
      {in(o.period_jitter, 0, adascale::PeriodSchedule::kMaxJitter), "period_jitter",
       o.period_jitter, "in [0, 0.5]"},
      {o.sustained_runnable == 0 || o.sustained_runnable == 1, "sustained_runnable",
       static_cast<double>(o.sustained_runnable), "0 or 1"},
  };
  static_assert(adascale::PeriodSchedule::kMaxJitter == 0.5, "the message names the bound");
  for (const Check& c : checks)
    if (!c.ok) {
      char value[32];
      std::snprintf(value, sizeof value, "%g", c.value);
      return std::string("adaptation option out of range: ") + c.name + " = " + value + " (" +
             c.range + ")";
    }
  return {};
}

// The session's state, created with default options on first use.
AdaptState* ensure_state(adascale_session* session) {
  auto& slot = adascale::adapt_state_slot(session);
  if (!slot) {
    auto state = std::make_shared<AdaptState>();
    adascale_adapt_options_init(&state->options);
    slot = state;
  }
  AdaptState* state = static_cast<AdaptState*>(slot.get());
  if (!state->loop) build_loop(session, state);
  return state;
}

adascale::Budgets to_budgets(const adascale_budgets& b) {
  adascale::Budgets out;
  out.latency_ms = b.latency_ms;
  out.memory_mode = b.memory_mode == ADASCALE_MEMORY_ABSOLUTE
                        ? adascale::MemoryBudgetMode::kAbsolute
                        : (b.memory_mode == ADASCALE_MEMORY_AVAILABLE_MINUS_MARGIN
                               ? adascale::MemoryBudgetMode::kAvailableMinusMargin
                               : adascale::MemoryBudgetMode::kNone);
  out.memory_bytes = b.memory_bytes;
  out.energy_mj = b.energy_mj;
  out.energy_weight = b.energy_weight;
  out.battery_aware = b.battery_aware != 0;
  out.battery_energy_weight = b.battery_energy_weight;
  out.battery_low_pct = b.battery_low_pct;
  return out;
}

void set_error(const adascale_session* session, std::string message) {
  if (std::string* error = adascale::last_error_slot(session)) *error = std::move(message);
}

// the guard of c_api_guard.h, keeping the message as the session's last error
template <typename F>
adascale_status guarded(const adascale_session* session, F body) {
  return adascale::guarded(adascale::last_error_slot(session), body);
}

}  // namespace

namespace adascale {

bool adapt_loop_running(const adascale_session* session) {
  const AdaptState* state = state_of(session);
  return state && state->loop && state->loop->running();
}

void rebuild_adapt_loop(adascale_session* session) {
  AdaptState* state = state_of(session);
  if (state && state->loop) build_loop(session, state);
}

}  // namespace adascale

extern "C" {

void adascale_budgets_init(adascale_budgets* budgets) {
  if (!budgets) return;
  const adascale::Budgets defaults;
  budgets->latency_ms = defaults.latency_ms;
  budgets->memory_mode = ADASCALE_MEMORY_NONE;
  budgets->memory_bytes = 0;
  budgets->energy_mj = defaults.energy_mj;
  budgets->energy_weight = defaults.energy_weight;
  budgets->battery_aware = 0;
  budgets->battery_energy_weight = defaults.battery_energy_weight;
  budgets->battery_low_pct = defaults.battery_low_pct;
}

void adascale_adapt_options_init(adascale_adapt_options* options) {
  if (!options) return;
  const adascale::ContextMonitorOptions monitor;
  const adascale::SelectorOptions selector;
  options->period_ms = monitor.period_ms;
  options->probe_period_ms = monitor.probe_period_ms;
  options->min_dwell_ms = selector.min_dwell_ms;
  options->switch_margin = selector.switch_margin;
  options->entry_margin = selector.entry_margin;
  options->inference_threads = 1;
  options->context_root = nullptr;
  const adascale::DeviceProfile device;
  options->tail_latency = selector.tail_latency ? 1 : 0;
  options->tail_quantile = device.tail_quantile;
  options->trial_window_ms = selector.trial_window_ms;
  options->objective_tolerance = selector.objective_tolerance;
  options->context_change = selector.context_change;
  options->context_settle_ms = selector.context_settle_ms;
  options->contended_tail_prior = device.contended_tail_prior;
  options->period_jitter = adascale::AdaptationOptions{}.period_jitter;
  options->sustained_runnable = device.sustained_runnable ? 1 : 0;
}

adascale_status adascale_session_set_budgets(adascale_session* session,
                                             const adascale_budgets* budgets) {
  if (!session || !budgets) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  return guarded(session, [&] {
    // a C caller may store any int in the enum field: read it as one (loading an enum value
    // outside its range is undefined behaviour in C++)
    int mode = 0;
    static_assert(sizeof(mode) == sizeof(budgets->memory_mode), "enum stored as int");
    std::memcpy(&mode, &budgets->memory_mode, sizeof(mode));
    if (mode < ADASCALE_MEMORY_NONE || mode > ADASCALE_MEMORY_AVAILABLE_MINUS_MARGIN) {
      set_error(session, "unknown memory budget mode");
      return ADASCALE_ERROR_INVALID_ARGUMENT;
    }
    const adascale::Budgets converted = to_budgets(*budgets);
    const adascale::Status s = adascale::validate_budgets(converted);
    if (!s.ok()) {
      set_error(session, s.message);
      return static_cast<adascale_status>(s.code);
    }
    AdaptState* state = ensure_state(session);
    state->budgets = converted;
    state->loop->set_budgets(converted);
    return ADASCALE_OK;
  });
}

adascale_status adascale_session_adapt_configure(adascale_session* session,
                                                 const adascale_adapt_options* options) {
  if (!session) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  return guarded(session, [&] {
    adascale_adapt_options chosen;
    adascale_adapt_options_init(&chosen);
    if (options) chosen = *options;
    if (std::string bad = check_options(chosen); !bad.empty()) {
      set_error(session, std::move(bad));
      return ADASCALE_ERROR_INVALID_ARGUMENT;
    }
    AdaptState* state = ensure_state(session);
    if (state->loop->running()) {
      set_error(session, "stop the adaptation loop before configuring it");
      return ADASCALE_ERROR_UNSUPPORTED;
    }
    state->options = chosen;
    state->context_root = chosen.context_root ? chosen.context_root : "";
    state->options.context_root = nullptr;  // the caller's string need not outlive this call
    build_loop(session, state);
    return ADASCALE_OK;
  });
}

adascale_status adascale_session_adapt_start(adascale_session* session) {
  if (!session) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  return guarded(session, [&] {
    const adascale::Status s = ensure_state(session)->loop->start();
    return static_cast<adascale_status>(s.code);
  });
}

adascale_status adascale_session_adapt_stop(adascale_session* session) {
  if (!session) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  AdaptState* state = state_of(session);
  if (state && state->loop) state->loop->stop();
  return ADASCALE_OK;
}

adascale_status adascale_session_adapt_step(adascale_session* session) {
  if (!session) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  return guarded(session, [&] {
    ensure_state(session)->loop->step();
    return ADASCALE_OK;
  });
}

adascale_status adascale_session_adapt_current_branch(const adascale_session* session,
                                                      size_t* index, const char** name) {
  if (!session) return ADASCALE_ERROR_INVALID_ARGUMENT;
  const AdaptState* state = state_of(session);
  const int branch = state && state->loop ? state->loop->current_branch() : -1;
  if (branch < 0) return ADASCALE_ERROR_NO_BRANCH_SELECTED;
  if (index) *index = static_cast<size_t>(branch);
  if (name) *name = state->loop->branch_name(static_cast<size_t>(branch)).c_str();
  return ADASCALE_OK;
}

adascale_status adascale_session_adapt_current_threads(const adascale_session* session,
                                                       int* threads) {
  if (!session || !threads) return ADASCALE_ERROR_INVALID_ARGUMENT;
  const AdaptState* state = state_of(session);
  const adascale::LoopChoice choice =
      state && state->loop ? state->loop->current() : adascale::LoopChoice{};
  if (choice.branch < 0) return ADASCALE_ERROR_NO_BRANCH_SELECTED;
  *threads = choice.threads;
  return ADASCALE_OK;
}

adascale_status adascale_session_adapt_last_context(const adascale_session* session,
                                                    adascale_context* context) {
  if (!session || !context) return ADASCALE_ERROR_INVALID_ARGUMENT;
  const AdaptState* state = state_of(session);
  if (!state || !state->loop || state->loop->stats().iterations == 0)
    return ADASCALE_ERROR_NOT_FOUND;
  return guarded(session, [&] {
    const adascale::ContextSample s = state->loop->last_sample();
    adascale_context c{};
    auto put = [&c](uint32_t bit, double* field, const auto& value) {
      if (!value) return;
      c.present |= bit;
      *field = static_cast<double>(*value);
    };
    c.time_ms = s.time_ms;
    put(ADASCALE_CTX_CPU_COUNT, &c.cpu_count, s.cpu_count);
    put(ADASCALE_CTX_CPU_UTILIZATION, &c.cpu_utilization, s.cpu_utilization);
    put(ADASCALE_CTX_PROCESS_CPU_UTILIZATION, &c.process_cpu_utilization,
        s.process_cpu_utilization);
    if (s.others_cpu_utilization) c.others_cpu_utilization = *s.others_cpu_utilization;
    put(ADASCALE_CTX_PROCS_RUNNING, &c.procs_running, s.procs_running);
    put(ADASCALE_CTX_LOADAVG, &c.loadavg_1, s.loadavg_1);
    put(ADASCALE_CTX_FREQUENCY, &c.frequency_ratio, s.frequency_ratio);
    if (s.mem_total_bytes && s.mem_available_bytes) {
      c.present |= ADASCALE_CTX_MEMINFO;
      c.mem_total_bytes = static_cast<double>(*s.mem_total_bytes);
      c.mem_available_bytes = static_cast<double>(*s.mem_available_bytes);
    }
    put(ADASCALE_CTX_AVAILABLE_MEMORY, &c.available_memory_bytes, s.available_memory_bytes());
    put(ADASCALE_CTX_CGROUP_MEMORY_LIMIT, &c.cgroup_memory_limit_bytes,
        s.cgroup_memory_limit_bytes);
    put(ADASCALE_CTX_CGROUP_MEMORY_USAGE, &c.cgroup_memory_usage_bytes,
        s.cgroup_memory_usage_bytes);
    put(ADASCALE_CTX_CGROUP_CPU_LIMIT, &c.cgroup_cpu_limit_cores, s.cgroup_cpu_limit_cores);
    put(ADASCALE_CTX_PSI_CPU, &c.psi_cpu_some_avg10, s.psi_cpu_some_avg10);
    put(ADASCALE_CTX_PSI_MEMORY, &c.psi_memory_some_avg10, s.psi_memory_some_avg10);
    put(ADASCALE_CTX_TEMPERATURE, &c.max_temperature_c, s.max_temperature_c);
    put(ADASCALE_CTX_BATTERY_CAPACITY, &c.battery_capacity_pct, s.battery_capacity_pct);
    if (s.battery_discharging) {
      c.present |= ADASCALE_CTX_BATTERY_STATUS;
      c.battery_discharging = *s.battery_discharging ? 1 : 0;
    }
    put(ADASCALE_CTX_BATTERY_POWER, &c.battery_power_w, s.battery_power_w);
    put(ADASCALE_CTX_POWERCAP_POWER, &c.powercap_power_w, s.powercap_power_w);
    put(ADASCALE_CTX_CACHE_RATE, &c.cache_rate, s.cache_rate);
    put(ADASCALE_CTX_BANDWIDTH, &c.bandwidth_gbps, s.bandwidth_gbps);
    *context = c;
    return ADASCALE_OK;
  });
}

adascale_status adascale_session_set_switch_callback(adascale_session* session,
                                                     adascale_switch_callback callback,
                                                     void* user_data) {
  if (!session) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  return guarded(session, [&] {
    AdaptState* state = ensure_state(session);
    state->callback = callback;
    state->user_data = user_data;
    install_callback(state);
    return ADASCALE_OK;
  });
}

adascale_status adascale_session_run_auto(adascale_session* session, const float* input,
                                          size_t input_count, float* logits,
                                          size_t logits_capacity) {
  if (!session) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  AdaptationLoop* loop = nullptr;
  const adascale_status created = guarded(session, [&] {
    loop = ensure_state(session)->loop.get();
    return ADASCALE_OK;
  });
  if (created != ADASCALE_OK) return created;
  adascale::LoopChoice choice = loop->current();
  if (choice.branch < 0) {
    const adascale_status stepped = guarded(session, [&] {
      loop->step();
      return ADASCALE_OK;
    });
    if (stepped != ADASCALE_OK) return stepped;
    choice = loop->current();
    if (choice.branch < 0) return ADASCALE_ERROR_NO_BRANCH_SELECTED;
  }
  const int branch = choice.branch;
  // Preparing an uncached branch happens here, outside the timed run.
  adascale_status status =
      adascale_session_select(session, loop->branch_name(static_cast<size_t>(branch)).c_str());
  if (status != ADASCALE_OK) return status;
  // the loop's threads for this branch; the session's own setting is kept for manual runs
  const int own_threads = adascale_session_threads(session);
  adascale_status threaded = adascale_session_set_threads(session, choice.threads);
  if (threaded != ADASCALE_OK) return threaded;
  const auto start = std::chrono::steady_clock::now();
  status = adascale_session_run(session, input, input_count, logits, logits_capacity);
  const auto stop = std::chrono::steady_clock::now();
  threaded = adascale_session_set_threads(session, own_threads);
  if (status == ADASCALE_OK) status = threaded;
  if (status != ADASCALE_OK) return status;
  // Catalog latencies are per call at the catalog's batch; other batch sizes are not comparable.
  int64_t dims[4];
  adascale_model_input_shape(adascale_session_model(session), dims);
  const size_t image = static_cast<size_t>(dims[1] * dims[2] * dims[3]);
  if (image > 0 && static_cast<int64_t>(input_count / image) == dims[0])
    loop->report_latency(branch, std::chrono::duration<double, std::milli>(stop - start).count(),
                         choice.threads);
  return ADASCALE_OK;
}

adascale_status adascale_session_adapt_report_latency(adascale_session* session, size_t index,
                                                      double observed_ms) {
  if (!session) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (!(observed_ms > 0) || !std::isfinite(observed_ms)) return ADASCALE_ERROR_INVALID_ARGUMENT;
  return guarded(session, [&] {
    AdaptationLoop* loop = ensure_state(session)->loop.get();
    if (index >= loop->branch_count()) return ADASCALE_ERROR_OUT_OF_RANGE;
    // the run was on the session's own count: a count the loop does not choose is dropped
    const int own = adascale_session_threads(session);
    loop->report_latency(static_cast<int>(index), observed_ms,
                         own > 0 ? own : adascale::session_model_threads(session));
    return ADASCALE_OK;
  });
}

adascale_status adascale_session_adapt_estimate(const adascale_session* session, size_t index,
                                                double* latency_ms, double* memory_bytes,
                                                double* energy_mj) {
  if (!session) return ADASCALE_ERROR_INVALID_ARGUMENT;
  const AdaptState* state = state_of(session);
  if (!state || !state->loop || state->loop->stats().iterations == 0)
    return ADASCALE_ERROR_NOT_FOUND;
  return guarded(session, [&] {
    // the branches come first; thread variants after them are not branches of the model
    const std::vector<adascale::BranchEstimate> estimates = state->loop->last_estimates();
    if (index >= state->loop->branch_count() || index >= estimates.size())
      return ADASCALE_ERROR_OUT_OF_RANGE;
    const adascale::BranchEstimate& e = estimates[index];
    if (latency_ms) *latency_ms = e.latency_known ? e.latency_ms : NAN;
    if (memory_bytes) *memory_bytes = e.memory_known ? e.memory_bytes : NAN;
    if (energy_mj) *energy_mj = e.energy_known ? e.energy_mj : NAN;
    return ADASCALE_OK;
  });
}

adascale_status adascale_session_adapt_get_stats(const adascale_session* session,
                                                 adascale_adapt_stats* stats) {
  if (!session || !stats) return ADASCALE_ERROR_INVALID_ARGUMENT;
  const AdaptState* state = state_of(session);
  if (!state || !state->loop) return ADASCALE_ERROR_NOT_FOUND;
  return guarded(session, [&] {
    const adascale::LoopStats s = state->loop->stats();
    const adascale::PredictionErrorStats e = state->loop->prediction_errors();
    stats->iterations = s.iterations;
    stats->switches = s.switches;
    stats->observations = s.observations;
    stats->nothing_fits = s.nothing_fits ? 1 : 0;
    stats->error_count = e.count;
    stats->median_error = e.median_corrected;
    stats->p90_error = e.p90_corrected;
    stats->median_error_uncorrected = e.median_uncorrected;
    stats->p90_error_uncorrected = e.p90_uncorrected;
    return ADASCALE_OK;
  });
}

// ---- the single handle's loop: its session's ----

adascale_status adascale_set_budgets(adascale_runtime* handle, const adascale_budgets* budgets) {
  return adascale_session_set_budgets(adascale::session_of(handle), budgets);
}
adascale_status adascale_adapt_configure(adascale_runtime* handle,
                                         const adascale_adapt_options* options) {
  return adascale_session_adapt_configure(adascale::session_of(handle), options);
}
adascale_status adascale_adapt_start(adascale_runtime* handle) {
  return adascale_session_adapt_start(adascale::session_of(handle));
}
adascale_status adascale_adapt_stop(adascale_runtime* handle) {
  return adascale_session_adapt_stop(adascale::session_of(handle));
}
adascale_status adascale_adapt_step(adascale_runtime* handle) {
  return adascale_session_adapt_step(adascale::session_of(handle));
}
adascale_status adascale_adapt_current_branch(const adascale_runtime* handle, size_t* index,
                                              const char** name) {
  return adascale_session_adapt_current_branch(adascale::session_of(handle), index, name);
}
adascale_status adascale_adapt_current_threads(const adascale_runtime* handle, int* threads) {
  return adascale_session_adapt_current_threads(adascale::session_of(handle), threads);
}
adascale_status adascale_adapt_last_context(const adascale_runtime* handle,
                                            adascale_context* context) {
  return adascale_session_adapt_last_context(adascale::session_of(handle), context);
}
adascale_status adascale_set_switch_callback(adascale_runtime* handle,
                                             adascale_switch_callback callback, void* user_data) {
  return adascale_session_set_switch_callback(adascale::session_of(handle), callback, user_data);
}
adascale_status adascale_run_auto(adascale_runtime* handle, const float* input, size_t input_count,
                                  float* logits, size_t logits_capacity) {
  return adascale_session_run_auto(adascale::session_of(handle), input, input_count, logits,
                                   logits_capacity);
}
adascale_status adascale_adapt_report_latency(adascale_runtime* handle, size_t index,
                                              double observed_ms) {
  return adascale_session_adapt_report_latency(adascale::session_of(handle), index, observed_ms);
}
adascale_status adascale_adapt_estimate(const adascale_runtime* handle, size_t index,
                                        double* latency_ms, double* memory_bytes,
                                        double* energy_mj) {
  return adascale_session_adapt_estimate(adascale::session_of(handle), index, latency_ms,
                                         memory_bytes, energy_mj);
}
adascale_status adascale_adapt_get_stats(const adascale_runtime* handle,
                                         adascale_adapt_stats* stats) {
  return adascale_session_adapt_get_stats(adascale::session_of(handle), stats);
}

}  // extern "C"
