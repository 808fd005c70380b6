/* AdaScale on-device runtime, C API. Every function returns a status code; no exception and no
 * C++ type crosses this boundary. docs/c-api.md describes lifetimes, threading and errors.
 *
 * Two ways in:
 *  - a model (adascale_model_open) shared read-only by any number of sessions
 *    (adascale_session_new), one per thread: the bundle is mapped and every branch's weights are
 *    derived and packed once per model, while each session has its own arenas, selected branch,
 *    adaptation loop, budgets and last error;
 *  - the single handle (adascale_open): one model and one session owned together.
 * Naming: adascale_<object>_<verb>, the object first (model_, session_; a session's adaptation
 * loop continues with adapt_), so related calls share the longest prefix. The single-handle calls
 * keep their names, adascale_<verb> on an adascale_runtime, and each has a session twin named
 * adascale_session_<verb> (adascale_run: adascale_session_run; adascale_adapt_start:
 * adascale_session_adapt_start) that behaves the same. */
#ifndef ADASCALE_H_
#define ADASCALE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum adascale_status {
  ADASCALE_OK = 0,
  ADASCALE_ERROR_IO = 1,
  ADASCALE_ERROR_FORMAT = 2,
  ADASCALE_ERROR_CHECKSUM = 3,
  ADASCALE_ERROR_SCHEMA_VERSION = 4,
  ADASCALE_ERROR_OUT_OF_RANGE = 5,
  ADASCALE_ERROR_INVALID_GRAPH = 6,
  ADASCALE_ERROR_NOT_FOUND = 7,
  ADASCALE_ERROR_INVALID_ARGUMENT = 8,
  ADASCALE_ERROR_UNSUPPORTED = 9,
  ADASCALE_ERROR_BACKEND = 10,
  ADASCALE_ERROR_OUT_OF_MEMORY = 11,
  ADASCALE_ERROR_NO_BRANCH_SELECTED = 12,
  /* called from inside a switch callback where the call is not allowed (see
   * adascale_set_switch_callback); nothing was changed */
  ADASCALE_ERROR_IN_CALLBACK = 13
} adascale_status;

typedef enum adascale_backend {
  /* XNNPACK, plus the runtime's own kernels where this CPU has them (int8 convolution on
   * AVX512-VNNI, which Debian's XNNPACK lacks) */
  ADASCALE_BACKEND_XNNPACK = 0,
  ADASCALE_BACKEND_REFERENCE = 1,    /* the portable reference kernels */
  ADASCALE_BACKEND_XNNPACK_PLAIN = 2 /* XNNPACK alone, for comparisons */
} adascale_backend;

typedef struct adascale_runtime adascale_runtime;
typedef struct adascale_model adascale_model;
typedef struct adascale_session adascale_session;

typedef struct adascale_branch_info {
  const char* name;       /* canonical branch name; valid while the model is (until close) */
  const char* costs_json; /* the exporter's costs object as JSON text; valid as long */
} adascale_branch_info;

/* ---- Model: the mapped, validated bundle and the weights its sessions share ----
 * Every model function may be called from any thread at any time, concurrently with the
 * sessions' calls. */

/* Opens and fully validates X.bundle/. threads: per inference (<= 1: the calling thread); with
 * more, the model's sessions share one thread pool and their parallel sections take turns.
 * On failure *model is NULL and adascale_model_open_error() says why. */
adascale_status adascale_model_open(const char* path, adascale_backend backend, int threads,
                                    adascale_model** model);
/* The one-line message of the calling thread's last failed open (adascale_model_open or
 * adascale_open*), "" after a success; valid until that thread's next open. */
const char* adascale_model_open_error(void);
/* Drops the opener's reference: the model is freed now when no session holds it, else with the
 * last of its sessions (sessions may be freed before or after it). Pass `model` to no call after
 * this one; adascale_session_model(s) gives it back, usable while s lives. */
void adascale_model_free(adascale_model* model);

adascale_status adascale_model_branch_count(const adascale_model* model, size_t* count);
adascale_status adascale_model_branch_info_at(const adascale_model* model, size_t index,
                                              adascale_branch_info* info);
/* Input as users see it: NCHW of one image (dims[0] is the catalog's batch, usually 1). */
adascale_status adascale_model_input_shape(const adascale_model* model, int64_t dims[4]);
adascale_status adascale_model_class_count(const adascale_model* model, size_t* count);

/* What the model shares among its sessions now. Fields are only ever appended. */
typedef struct adascale_model_cache {
  size_t branches;       /* prepared branches that at least one session keeps */
  size_t weight_bytes;   /* their weights, once per branch however many sessions keep it */
  uint64_t preparations; /* branch preparations (weights derived and packed) since open */
} adascale_model_cache;
adascale_status adascale_model_cache_info(const adascale_model* model, adascale_model_cache* cache);

/* ---- Session: what one thread needs to run branches of a model ----
 * A session is not thread-safe: call it from one thread at a time. Sessions of one model run
 * concurrently; a branch's weights are prepared by the first session that selects it and
 * shared with the others (each session then only plans its own arena). */

/* Holds a reference to the model (see adascale_model_free). */
adascale_status adascale_session_new(adascale_model* model, adascale_session** session);
void adascale_session_free(adascale_session* session);
/* The message of the session's last failure. */
const char* adascale_session_last_error(const adascale_session* session);
adascale_model* adascale_session_model(const adascale_session* session);

/* Bytes of branches this session keeps prepared for fast switching, the least recently used
 * dropped past the budget (never the selected one). Each kept branch counts its weights (shared
 * with the model's other sessions, stored once per model) plus this session's arena for it. */
adascale_status adascale_session_set_memory_budget(adascale_session* session, size_t bytes);
/* Makes `name` current: a branch this session keeps costs nothing; one another session keeps is
 * bound to a new arena (no re-packing); else it is prepared. */
adascale_status adascale_session_select(adascale_session* session, const char* name);
adascale_status adascale_session_cache_info(const adascale_session* session,
                                            size_t* cached_branches, size_t* cached_bytes);
/* 1 when this session keeps `name` prepared, else 0. */
int adascale_session_is_cached(const adascale_session* session, const char* name);
/* Peak activation bytes of the selected branch at the current batch size. */
adascale_status adascale_session_selected_arena_bytes(const adascale_session* session,
                                                      size_t* bytes);
/* Threads of this session's next inferences: 1 to the model's count (adascale_model_open's
 * threads), or 0 for the model's count (the default); each count has its own thread pool. More
 * threads are not always faster at batch 1 (docs/benchmarks.md, "Threads"): the catalog's
 * latency_by_threads says where they are, and adascale_session_run_auto picks the count with the
 * branch. ADASCALE_ERROR_INVALID_ARGUMENT outside that range. */
adascale_status adascale_session_set_threads(adascale_session* session, int threads);
/* The count set with adascale_session_set_threads (0: the model's); -1 for a null session. */
int adascale_session_threads(const adascale_session* session);
/* The most threads one inference of this session may use: its model's count as opened, 1 for
 * the reference backend (it runs on the calling thread whatever was asked); -1 for a null
 * session. */
int adascale_session_max_threads(const adascale_session* session);
/* Arguments as for adascale_run. */
adascale_status adascale_session_run(adascale_session* session, const float* input,
                                     size_t input_count, float* logits, size_t logits_capacity);

/* ---- Single handle: one model and one session owned together ---- */

/* Opens and fully validates X.bundle/ with the XNNPACK backend on one thread. On failure
 * *handle is NULL; adascale_open_ex also copies a one-line message into error_message when it is
 * non-NULL (truncated to error_message_capacity). Not thread-safe: use one per thread, or one
 * model and a session per thread, which share the weights. */
adascale_status adascale_open(const char* path, adascale_runtime** handle);
adascale_status adascale_open_ex(const char* path, adascale_backend backend, int threads,
                                 adascale_runtime** handle, char* error_message,
                                 size_t error_message_capacity);
void adascale_close(adascale_runtime* handle);
const char* adascale_last_error(const adascale_runtime* handle);

adascale_status adascale_branch_count(const adascale_runtime* handle, size_t* count);
adascale_status adascale_branch_info_at(const adascale_runtime* handle, size_t index,
                                        adascale_branch_info* info);
/* Input as users see it: NCHW of one image (dims[0] is the catalog's batch, usually 1). */
adascale_status adascale_input_shape(const adascale_runtime* handle, int64_t dims[4]);
adascale_status adascale_class_count(const adascale_runtime* handle, size_t* count);

/* Bytes of prepared branches (packed weights + activation arena) kept for fast switching;
 * the least recently used are dropped past the budget. The selected branch is always kept. */
adascale_status adascale_set_memory_budget(adascale_runtime* handle, size_t bytes);
/* Makes `name` current, preparing it unless cached (a cached switch does no re-packing). */
adascale_status adascale_select(adascale_runtime* handle, const char* name);
adascale_status adascale_cache_info(const adascale_runtime* handle, size_t* cached_branches,
                                    size_t* cached_bytes);
/* 1 when `name` is prepared and cached, else 0. */
int adascale_is_cached(const adascale_runtime* handle, const char* name);
/* Peak activation bytes of the selected branch at the current batch size. */
adascale_status adascale_selected_arena_bytes(const adascale_runtime* handle, size_t* bytes);

/* Runs the selected branch. input: `input_count` floats, a whole number of NCHW images, raw
 * values that the runtime normalizes with the catalog's mean/std. logits: capacity
 * `logits_capacity` floats, receives images x classes values. */
adascale_status adascale_run(adascale_runtime* handle, const float* input, size_t input_count,
                             float* logits, size_t logits_capacity);
/* As adascale_session_set_threads: threads of the next runs, 1 to the count the handle was
 * opened with, 0 for that count. */
adascale_status adascale_set_threads(adascale_runtime* handle, int threads);
int adascale_threads(const adascale_runtime* handle);      // as adascale_session_threads
int adascale_max_threads(const adascale_runtime* handle);  // as adascale_session_max_threads

/* One node's time in adascale_profile. Fields are only ever appended; the runtime writes the
 * struct of the header it was built with, so build against the header of the library you link. */
typedef struct adascale_node_timing {
  const char* op;     /* registered op name */
  const char* output; /* the tensor the node defines */
  const char* layer;  /* "conv 3x3", "conv 1x1", "depthwise 3x3", "fully connected", else the op */
  const char* dtype;  /* the output's element type: "f32", "i8" or "i32" */
  int reference;      /* 1: the node ran the portable reference kernel */
  double median_us;   /* median over the runs */
  const char* kernel; /* what ran it: "xnnpack", "reference" or an ISA kernel ("avx512vnni") */
} adascale_node_timing;

/* Runs the selected branch `runs` times, timing every node: on the input of the last
 * adascale_run when its batch matches the prepared one, else on zeros (latency does not depend
 * on the values). Writes up to `capacity` timings in graph order and the node count to *count;
 * the strings stay valid until the next adascale_profile or adascale_close. Capacity 0 only
 * reports the node count (nothing runs). */
adascale_status adascale_profile(adascale_runtime* handle, int runs, adascale_node_timing* timings,
                                 size_t capacity, size_t* count);
adascale_status adascale_session_profile(adascale_session* session, int runs,
                                         adascale_node_timing* timings, size_t capacity,
                                         size_t* count);

/* ---- Automated adaptation loop: monitor -> profiler -> selector (runtime/adapt/) ----
 * A background thread senses the context, predicts every branch's latency, memory and energy
 * from the catalog costs, and picks a branch under the budgets. adascale_run_auto runs that
 * branch and feeds its observed latency back. Every session has a loop of its own (with its own
 * budgets, options, callback and corrections), created on first use; freeing the session stops
 * it. Callbacks run on the loop's thread. The adascale_<verb> calls below act on a handle's
 * session; the adascale_session_* twins at the end of this section take a session. */

typedef enum adascale_memory_mode {
  ADASCALE_MEMORY_NONE = 0,                  /* no memory constraint */
  ADASCALE_MEMORY_ABSOLUTE = 1,              /* memory_bytes is the limit */
  ADASCALE_MEMORY_AVAILABLE_MINUS_MARGIN = 2 /* limit = available memory - memory_bytes */
} adascale_memory_mode;

typedef struct adascale_budgets {
  double latency_ms; /* per inference; INFINITY: no limit; <= 0 or NaN is rejected */
  adascale_memory_mode memory_mode;
  double memory_bytes;  /* the limit or the margin, see memory_mode */
  double energy_mj;     /* per inference; INFINITY: no limit; <= 0 or NaN is rejected */
  double energy_weight; /* objective = accuracy - energy_weight * energy_mJ; 0: accuracy alone */
  int battery_aware;    /* 1: on battery the weight grows as it drains; energy alone when low */
  double battery_energy_weight; /* added weight at an empty battery */
  double battery_low_pct;       /* below this capacity, minimise energy */
} adascale_budgets;

/* No limits, accuracy objective, battery policy off (weight 1, low at 15%). */
void adascale_budgets_init(adascale_budgets* budgets);
adascale_status adascale_set_budgets(adascale_runtime* handle, const adascale_budgets* budgets);

typedef struct adascale_adapt_options {
  double period_ms;         /* loop period (default 100) */
  double probe_period_ms;   /* cache/bandwidth probe period, <= 0 disables it (default 1000) */
  double min_dwell_ms;      /* no improvement switch sooner than this (default 500) */
  double switch_margin;     /* objective gain needed to switch (default 0.005) */
  double entry_margin;      /* a new branch must fit within (1 - margin) x budget (default 0.05) */
  int inference_threads;    /* threads one inference uses (default 1) */
  const char* context_root; /* NULL or "/": this system; else a fixture tree (copied) */
  /* appended later; adascale_adapt_options_init sets them all */
  int tail_latency;            /* 1: judge the latency budget on the tail estimate (default 0) */
  double tail_quantile;        /* the tail: this quantile of observed/predicted, in [0.5, 1] */
  double trial_window_ms;      /* backoff window after an improvement switch, 0: off */
  double objective_tolerance;  /* objectives this close are equal, the faster wins (>= 0) */
  double context_change;       /* contention ratio that waives the dwell: 0 (off) or > 1 */
  double context_settle_ms;    /* ... once it has held this long (>= 0) */
  double contended_tail_prior; /* tail factor of a contention level without its own, >= 1 */
  /* each period is drawn within +-this share of period_ms, in [0, 0.5] (default 0.2): two loops
   * started together do not sample in lockstep and count each other as load; 0: a fixed period */
  double period_jitter;
  /* 1 (default): other processes' runnable count adds to the load only as far as the previous
   * sample also showed it, so a task runnable at one sample and gone at the next does not make
   * the loop step down; 0: every sample counts (a device whose short tasks hold a core) */
  int sustained_runnable;
} adascale_adapt_options;

void adascale_adapt_options_init(adascale_adapt_options* options);
/* (Re)creates the loop with these options (NULL: defaults); keeps budgets and callback but
 * forgets corrections. Only while stopped. */
adascale_status adascale_adapt_configure(adascale_runtime* handle,
                                         const adascale_adapt_options* options);
/* Starts the background thread (creating the loop with defaults when not configured). */
adascale_status adascale_adapt_start(adascale_runtime* handle);
adascale_status adascale_adapt_stop(adascale_runtime* handle);
/* One monitor -> profiler -> selector iteration on the calling thread, for deterministic
 * stepping (replayers, tests); serialized with the background thread. */
adascale_status adascale_adapt_step(adascale_runtime* handle);

/* The loop's current choice; ADASCALE_ERROR_NO_BRANCH_SELECTED before its first decision.
 * Either output may be NULL; *name stays valid until close or configure. */
adascale_status adascale_adapt_current_branch(const adascale_runtime* handle, size_t* index,
                                              const char** name);
/* The threads the loop runs its current branch on: the count it chose with the branch
 * (adascale_run_auto runs it so), or 0 when the loop does not choose threads (one thread opened,
 * or latencies without per-count timings: no latency_by_threads in the catalog, a version-1
 * device profile), and adascale_run_auto runs the model's count, which those latencies were
 * timed on. An app that runs the loop's choice itself sets this count on the session
 * (adascale_session_set_threads) before it runs and reports: a report is taken to be of the
 * session's count. */
adascale_status adascale_adapt_current_threads(const adascale_runtime* handle, int* threads);

/* Bits of adascale_context.present. */
enum {
  ADASCALE_CTX_CPU_UTILIZATION = 1u << 0,
  ADASCALE_CTX_PROCESS_CPU_UTILIZATION = 1u << 1,
  ADASCALE_CTX_PROCS_RUNNING = 1u << 2,
  ADASCALE_CTX_LOADAVG = 1u << 3,
  ADASCALE_CTX_FREQUENCY = 1u << 4,
  ADASCALE_CTX_MEMINFO = 1u << 5,
  ADASCALE_CTX_CGROUP_MEMORY_LIMIT = 1u << 6,
  ADASCALE_CTX_CGROUP_MEMORY_USAGE = 1u << 7,
  ADASCALE_CTX_CGROUP_CPU_LIMIT = 1u << 8,
  ADASCALE_CTX_PSI_CPU = 1u << 9,
  ADASCALE_CTX_PSI_MEMORY = 1u << 10,
  ADASCALE_CTX_TEMPERATURE = 1u << 11,
  ADASCALE_CTX_BATTERY_CAPACITY = 1u << 12,
  ADASCALE_CTX_BATTERY_STATUS = 1u << 13,
  ADASCALE_CTX_BATTERY_POWER = 1u << 14,
  ADASCALE_CTX_POWERCAP_POWER = 1u << 15,
  ADASCALE_CTX_CACHE_RATE = 1u << 16,
  ADASCALE_CTX_BANDWIDTH = 1u << 17,
  ADASCALE_CTX_CPU_COUNT = 1u << 18,
  ADASCALE_CTX_AVAILABLE_MEMORY = 1u << 19
};

/* The last context sample; a field is meaningful only when its bit is set in `present`. */
typedef struct adascale_context {
  uint32_t present;
  double time_ms; /* steady clock */
  double cpu_count;
  double cpu_utilization;         /* 0..1, whole system */
  double process_cpu_utilization; /* 0..1 of all CPUs, this process */
  double others_cpu_utilization;  /* 0..1, system minus this process */
  double procs_running;
  double loadavg_1;
  double frequency_ratio; /* mean cur/max */
  double mem_total_bytes;
  double mem_available_bytes;
  double available_memory_bytes; /* MemAvailable capped by the cgroup headroom */
  double cgroup_memory_limit_bytes;
  double cgroup_memory_usage_bytes;
  double cgroup_cpu_limit_cores;
  double psi_cpu_some_avg10;
  double psi_memory_some_avg10;
  double max_temperature_c;
  double battery_capacity_pct;
  int battery_discharging;
  double battery_power_w;
  double powercap_power_w;
  double cache_rate;
  double bandwidth_gbps;
} adascale_context;

adascale_status adascale_adapt_last_context(const adascale_runtime* handle,
                                            adascale_context* context);

typedef struct adascale_switch_event {
  double time_ms;
  const char* from; /* NULL on the first decision; valid until close or configure */
  const char* to;
  const char* reason;  /* "initial", "infeasible", "better" or "nothing-fits" */
  int nothing_fits;    /* 1: no branch fits the budgets, the least violating one runs */
  double predicted_ms; /* predicted latency of `to` */
  double observed_ms;  /* last observed latency of `from`; -1 when none */
  /* threads of `from` and `to` (0: the loop does not choose threads); a switch of threads alone
   * has from == to */
  int from_threads, to_threads;
} adascale_switch_event;

/* The callback runs on whichever thread steps the loop (its background thread, or the caller of
 * adascale_adapt_step / adascale_run_auto) while the loop is in the middle of a step. From inside
 * it, only these calls are allowed: adascale_adapt_current_branch,
 * adascale_adapt_current_threads, adascale_adapt_last_context,
 * adascale_adapt_estimate, adascale_adapt_get_stats, adascale_adapt_report_latency,
 * adascale_branch_count, adascale_branch_info_at, adascale_input_shape, adascale_class_count,
 * their adascale_session_* twins, and every adascale_model_* call. Every other call that takes a
 * handle or a session (of any model) returns ADASCALE_ERROR_IN_CALLBACK without doing anything
 * (adascale_close and adascale_session_free, which return nothing, leave it open):
 * reconfiguring, stopping or stepping the loop, changing the callback, or running a branch would
 * otherwise free the loop under the step, deadlock on it, or race the thread that owns the
 * session. Calls from inside a callback do not set the session's last error. Record what you
 * need and act on it after the callback returns. */
typedef void (*adascale_switch_callback)(const adascale_switch_event* event, void* user_data);
/* NULL callback unregisters. */
adascale_status adascale_set_switch_callback(adascale_runtime* handle,
                                             adascale_switch_callback callback, void* user_data);

/* Runs the loop's current branch (one synchronous step first if it has not decided yet), and
 * feeds the observed latency back when the call holds the catalog's batch. Arguments as for
 * adascale_run. */
adascale_status adascale_run_auto(adascale_runtime* handle, const float* input, size_t input_count,
                                  float* logits, size_t logits_capacity);
/* Feeds back a latency measured elsewhere (ms per inference of branch `index`). */
adascale_status adascale_adapt_report_latency(adascale_runtime* handle, size_t index,
                                              double observed_ms);

/* Predictions of the last step for branch `index`; outputs may be NULL. */
adascale_status adascale_adapt_estimate(const adascale_runtime* handle, size_t index,
                                        double* latency_ms, double* memory_bytes,
                                        double* energy_mj);

typedef struct adascale_adapt_stats {
  uint64_t iterations;
  uint64_t switches;
  uint64_t observations;
  int nothing_fits; /* the last decision found no branch within the budgets */
  uint64_t error_count;
  double median_error; /* |predicted - observed| / observed, with online correction */
  double p90_error;
  double median_error_uncorrected; /* the same, context scaling only */
  double p90_error_uncorrected;
} adascale_adapt_stats;

adascale_status adascale_adapt_get_stats(const adascale_runtime* handle,
                                         adascale_adapt_stats* stats);

/* The same calls on a session's loop. */
adascale_status adascale_session_set_budgets(adascale_session* session,
                                             const adascale_budgets* budgets);
adascale_status adascale_session_adapt_configure(adascale_session* session,
                                                 const adascale_adapt_options* options);
adascale_status adascale_session_adapt_start(adascale_session* session);
adascale_status adascale_session_adapt_stop(adascale_session* session);
adascale_status adascale_session_adapt_step(adascale_session* session);
adascale_status adascale_session_adapt_current_branch(const adascale_session* session,
                                                      size_t* index, const char** name);
adascale_status adascale_session_adapt_current_threads(const adascale_session* session,
                                                       int* threads);
adascale_status adascale_session_adapt_last_context(const adascale_session* session,
                                                    adascale_context* context);
adascale_status adascale_session_set_switch_callback(adascale_session* session,
                                                     adascale_switch_callback callback,
                                                     void* user_data);
adascale_status adascale_session_run_auto(adascale_session* session, const float* input,
                                          size_t input_count, float* logits,
                                          size_t logits_capacity);
adascale_status adascale_session_adapt_report_latency(adascale_session* session, size_t index,
                                                      double observed_ms);
adascale_status adascale_session_adapt_estimate(const adascale_session* session, size_t index,
                                                double* latency_ms, double* memory_bytes,
                                                double* energy_mj);
adascale_status adascale_session_adapt_get_stats(const adascale_session* session,
                                                 adascale_adapt_stats* stats);

/* ---- Device profile: branch latencies measured on this device ----
 * The catalog's latencies were measured on the export host. A device profile (JSON, by default
 * device-profile.json in the bundle folder) holds every branch's median and p90 latency measured
 * on the device that runs the bundle, with the CPU, threads and backend they were measured with.
 * Opening a model reads the default one; when it lists exactly the bundle's branches and was
 * measured on this CPU with the model's threads and backend, every new session's adaptation loop
 * predicts from it instead of the catalog. A profile that does not match is not used (and
 * adascale_latency_source says why). docs/device-profile.md describes the file. */

/* Measures every branch on this device: `runs` timed calls each at the catalog's batch, in
 * `rounds` rounds that visit every branch in turn, after a warm-up (0 for either: 200 runs in 5
 * rounds); median and p90 per branch. Writes the profile to `path` (NULL: device-profile.json
 * in the bundle folder) atomically and makes the session use it. Runs on a session of its own, so
 * the session's selected and cached branches stay as they were; the loop must be stopped (it is
 * built again, as by adascale_adapt_configure). Takes about runs x the sum of the branches'
 * latencies. */
adascale_status adascale_calibrate(adascale_runtime* handle, int runs, int rounds,
                                   const char* path);
/* Makes the session's loop predict from the profile at `path` (NULL: from the catalog again).
 * A profile that cannot be read, or does not match (another bundle's branches, other threads,
 * backend or CPU), is refused with a message naming the culprit and changes nothing. The loop
 * must be stopped; it is built again (budgets, options and callback kept, corrections
 * forgotten). */
adascale_status adascale_use_device_profile(adascale_runtime* handle, const char* path);
/* Where the loop's latencies come from, one line: "device profile <path> (<cpu>, <n> threads,
 * <backend>)" or "catalog (export host: <device>)", the latter followed by "; device profile
 * <path> not used: <reason>" when a profile was found but refused. Valid until the next
 * adascale_calibrate or adascale_use_device_profile, or close. */
const char* adascale_latency_source(const adascale_runtime* handle);

adascale_status adascale_session_calibrate(adascale_session* session, int runs, int rounds,
                                           const char* path);
adascale_status adascale_session_use_device_profile(adascale_session* session, const char* path);
const char* adascale_session_latency_source(const adascale_session* session);

#ifdef __cplusplus
}
#endif

#endif /* ADASCALE_H_ */
