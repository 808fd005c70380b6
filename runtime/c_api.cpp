// C API: a model (bundle, backend and the branch weights its sessions share, each prepared once)
// and sessions over it (an LRU cache of branches bound to their own arenas, bounded by a byte
// budget). The single-handle functions act on an adascale_runtime: a session that holds the only
// reference to its model.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "adascale.h"
#include "runtime/backend.h"
#include "runtime/bundle.h"
#include "runtime/c_api_guard.h"

struct adascale_model : std::enable_shared_from_this<adascale_model> {
  std::unique_ptr<adascale::Bundle> bundle;
  std::unique_ptr<adascale::Backend> backend;
  // One per branch, in catalog order: the weights while some session keeps the branch. The
  // mutex makes a second session wait for a preparation under way instead of packing again.
  struct Slot {
    std::mutex mutex;
    std::weak_ptr<adascale::BranchWeights> weights;
  };
  std::unique_ptr<Slot[]> slots;
  std::atomic<uint64_t> preparations{0};
  adascale::ModelSetup setup;
  adascale::LatencySource latency;  // what new sessions predict from (device profile or catalog)
  // The opener's reference; adascale_model_free drops it, sessions hold the others.
  std::shared_ptr<adascale_model> owner;
};

struct adascale_session {
  // Declared first so that it goes last: the cached branches point into the model's bundle.
  std::shared_ptr<adascale_model> model;
  // Most recently used first.
  std::list<std::unique_ptr<adascale::PreparedBranch>> cache;
  size_t budget_bytes = 256u << 20;
  adascale::PreparedBranch* selected = nullptr;
  std::vector<float> scratch;                 // NHWC normalized input
  std::vector<adascale::NodeTiming> profile;  // backs the strings adascale_profile hands out
  std::string last_error;
  int threads = 0;                  // per inference; 0: the model's count
  adascale::LatencySource latency;  // what the adaptation loop predicts from
  // State of the adaptation loop (runtime/adapt/c_api_adapt.cpp); declared last so that the loop
  // thread stops before anything else is destroyed.
  std::shared_ptr<void> adapt;
};

struct adascale_runtime : adascale_session {};

namespace adascale {
thread_local int switch_callback_depth = 0;

adascale_session* session_of(adascale_runtime* handle) { return handle; }
const adascale_session* session_of(const adascale_runtime* handle) { return handle; }
std::shared_ptr<void>& adapt_state_slot(adascale_session* session) { return session->adapt; }
int session_model_threads(const adascale_session* session) { return session->model->setup.threads; }
std::string* last_error_slot(const adascale_session* session) {
  return in_switch_callback() ? nullptr : &const_cast<adascale_session*>(session)->last_error;
}
const ModelSetup& model_setup(const adascale_model* model) { return model->setup; }
LatencySource& latency_source_slot(adascale_session* session) { return session->latency; }
const LatencySource& latency_source_of(const adascale_session* session) { return session->latency; }
}  // namespace adascale

namespace {

using adascale::guarded;
using adascale::in_switch_callback;
using adascale::Status;

thread_local std::string open_error;  // adascale_model_open_error

adascale_status fail(adascale_session* s, const Status& status) {
  if (s) s->last_error = status.message;
  return static_cast<adascale_status>(status.code);
}

adascale_status fail(adascale_session* s, adascale_status code, const std::string& message) {
  if (s) s->last_error = message;
  return code;
}

size_t cached_bytes(const adascale_session* s) {
  size_t total = 0;
  for (const auto& prepared : s->cache) total += prepared->memory_bytes();
  return total;
}

// Drops least recently used branches until the cache fits; never the selected one.
void evict(adascale_session* s) {
  auto it = s->cache.end();
  while (cached_bytes(s) > s->budget_bytes && it != s->cache.begin()) {
    --it;
    if (it->get() != s->selected) it = s->cache.erase(it);
  }
}

// The model's weights of `branch`, prepared unless some session keeps them already.
Status shared_weights(adascale_model* m, const adascale::Branch& branch,
                      std::shared_ptr<adascale::BranchWeights>* out) {
  adascale_model::Slot& slot =
      m->slots[static_cast<size_t>(&branch - m->bundle->branches().data())];
  std::lock_guard<std::mutex> lock(slot.mutex);
  *out = slot.weights.lock();
  if (*out) return adascale::ok_status();
  Status s =
      m->backend->prepare_weights(branch, m->bundle->constants(), m->bundle->input().nhwc(), out);
  if (!s.ok()) return s;
  slot.weights = *out;
  m->preparations.fetch_add(1, std::memory_order_relaxed);
  return s;
}

// A C caller may pass any int as the backend: read it as one (loading an enum value outside its
// range is undefined behaviour in C++).
int backend_value(const adascale_backend* backend) {
  int value = 0;
  static_assert(sizeof(value) == sizeof(*backend), "enum passed as int");
  std::memcpy(&value, backend, sizeof(value));
  return value;
}

// Opens and validates the bundle; the message of a failure goes to open_error.
adascale_status open_model(const char* path, int backend, int threads,
                           std::shared_ptr<adascale_model>* out) {
  open_error.clear();
  auto report = [](adascale_status code, const std::string& message) {
    open_error = message;
    return code;
  };
  if (!path) return report(ADASCALE_ERROR_INVALID_ARGUMENT, "null path");
  if (backend != ADASCALE_BACKEND_XNNPACK && backend != ADASCALE_BACKEND_REFERENCE &&
      backend != ADASCALE_BACKEND_XNNPACK_PLAIN)
    return report(ADASCALE_ERROR_INVALID_ARGUMENT, "unknown backend " + std::to_string(backend));
  return guarded(&open_error, [&]() -> adascale_status {
    auto model = std::make_shared<adascale_model>();
    Status s = adascale::Bundle::open(path, &model->bundle);
    if (!s.ok()) return report(static_cast<adascale_status>(s.code), s.message);
    if (backend == ADASCALE_BACKEND_REFERENCE)
      model->backend = adascale::make_reference_backend();
    else
      model->backend =
          adascale::make_xnnpack_backend(threads, backend != ADASCALE_BACKEND_XNNPACK_PLAIN);
    model->slots = std::make_unique<adascale_model::Slot[]>(model->bundle->branches().size());
    model->setup.bundle_path = path;
    model->setup.backend = backend == ADASCALE_BACKEND_REFERENCE       ? "reference"
                           : backend == ADASCALE_BACKEND_XNNPACK_PLAIN ? "xnnpack-plain"
                                                                       : "xnnpack";
    // the reference backend runs on the calling thread whatever was asked
    model->setup.threads = backend == ADASCALE_BACKEND_REFERENCE ? 1 : std::max(1, threads);
    model->latency = adascale::default_latency_source(model.get(), model->setup);
    *out = std::move(model);
    return ADASCALE_OK;
  });
}

}  // namespace

extern "C" {

// ---- model ----

adascale_status adascale_model_open(const char* path, adascale_backend backend, int threads,
                                    adascale_model** model) {
  if (!model) return ADASCALE_ERROR_INVALID_ARGUMENT;
  *model = nullptr;
  std::shared_ptr<adascale_model> opened;
  const adascale_status status = open_model(path, backend_value(&backend), threads, &opened);
  if (status != ADASCALE_OK) return status;
  opened->owner = opened;
  *model = opened.get();
  return ADASCALE_OK;
}

const char* adascale_model_open_error(void) { return open_error.c_str(); }

void adascale_model_free(adascale_model* model) {
  if (!model) return;
  // freed here unless sessions still hold it; then the last adascale_session_free frees it
  const std::shared_ptr<adascale_model> reference = std::move(model->owner);
}

adascale_status adascale_model_branch_count(const adascale_model* model, size_t* count) {
  if (!model || !count) return ADASCALE_ERROR_INVALID_ARGUMENT;
  *count = model->bundle->branches().size();
  return ADASCALE_OK;
}

adascale_status adascale_model_branch_info_at(const adascale_model* model, size_t index,
                                              adascale_branch_info* info) {
  if (!model || !info) return ADASCALE_ERROR_INVALID_ARGUMENT;
  const auto& branches = model->bundle->branches();
  if (index >= branches.size()) return ADASCALE_ERROR_OUT_OF_RANGE;
  info->name = branches[index].name.c_str();
  info->costs_json = branches[index].costs_json.c_str();
  return ADASCALE_OK;
}

adascale_status adascale_model_input_shape(const adascale_model* model, int64_t dims[4]) {
  if (!model || !dims) return ADASCALE_ERROR_INVALID_ARGUMENT;
  for (int i = 0; i < 4; ++i) dims[i] = model->bundle->input().shape_nchw[i];
  return ADASCALE_OK;
}

adascale_status adascale_model_class_count(const adascale_model* model, size_t* count) {
  if (!model || !count) return ADASCALE_ERROR_INVALID_ARGUMENT;
  *count = model->bundle->classes().size();
  return ADASCALE_OK;
}

adascale_status adascale_model_cache_info(const adascale_model* model,
                                          adascale_model_cache* cache) {
  if (!model || !cache) return ADASCALE_ERROR_INVALID_ARGUMENT;
  adascale_model_cache info{};
  for (size_t i = 0; i < model->bundle->branches().size(); ++i) {
    adascale_model::Slot& slot = model->slots[i];
    std::lock_guard<std::mutex> lock(slot.mutex);
    if (const auto weights = slot.weights.lock()) {
      ++info.branches;
      info.weight_bytes += weights->weight_bytes();
    }
  }
  info.preparations = model->preparations.load(std::memory_order_relaxed);
  *cache = info;
  return ADASCALE_OK;
}

// ---- session ----

adascale_status adascale_session_new(adascale_model* model, adascale_session** session) {
  if (!session) return ADASCALE_ERROR_INVALID_ARGUMENT;
  *session = nullptr;
  if (!model) return ADASCALE_ERROR_INVALID_ARGUMENT;
  return guarded(nullptr, [&] {
    auto created = std::make_unique<adascale_session>();
    created->model = model->shared_from_this();
    created->latency = model->latency;
    *session = created.release();
    return ADASCALE_OK;
  });
}

void adascale_session_free(adascale_session* session) {
  if (in_switch_callback())
    return;  // freeing the loop under its own step: refused, the session stays
  delete session;
}

const char* adascale_session_last_error(const adascale_session* session) {
  return session ? session->last_error.c_str() : "null session";
}

adascale_model* adascale_session_model(const adascale_session* session) {
  return session ? session->model.get() : nullptr;
}

adascale_status adascale_session_set_memory_budget(adascale_session* s, size_t bytes) {
  if (!s) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  s->budget_bytes = bytes;
  evict(s);
  return ADASCALE_OK;
}

adascale_status adascale_session_select(adascale_session* s, const char* name) {
  if (!s) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  if (!name) return fail(s, ADASCALE_ERROR_INVALID_ARGUMENT, "null branch name");
  return guarded(&s->last_error, [&]() -> adascale_status {
    for (auto it = s->cache.begin(); it != s->cache.end(); ++it) {
      if ((*it)->name() == name) {
        s->cache.splice(s->cache.begin(), s->cache, it);  // cheap switch: no re-packing
        s->selected = s->cache.front().get();
        return ADASCALE_OK;
      }
    }
    const adascale::Branch* branch = s->model->bundle->find_branch(name);
    if (!branch) return fail(s, ADASCALE_ERROR_NOT_FOUND, std::string("no branch '") + name + "'");
    std::shared_ptr<adascale::BranchWeights> weights;
    Status st = shared_weights(s->model.get(), *branch, &weights);
    if (!st.ok()) return fail(s, st);
    std::unique_ptr<adascale::PreparedBranch> prepared;
    st = adascale::bind_branch(std::move(weights), &prepared);
    if (!st.ok()) return fail(s, st);
    s->cache.push_front(std::move(prepared));
    s->selected = s->cache.front().get();
    evict(s);
    return ADASCALE_OK;
  });
}

adascale_status adascale_session_cache_info(const adascale_session* s, size_t* cached_branches,
                                            size_t* bytes) {
  if (!s) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (cached_branches) *cached_branches = s->cache.size();
  if (bytes) *bytes = cached_bytes(s);
  return ADASCALE_OK;
}

int adascale_session_is_cached(const adascale_session* s, const char* name) {
  if (!s || !name) return 0;
  for (const auto& prepared : s->cache)
    if (prepared->name() == name) return 1;
  return 0;
}

adascale_status adascale_session_selected_arena_bytes(const adascale_session* s, size_t* bytes) {
  if (!s || !bytes) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (!s->selected) return ADASCALE_ERROR_NO_BRANCH_SELECTED;
  *bytes = s->selected->arena_bytes();
  return ADASCALE_OK;
}

namespace {
// the session's count of threads on its selected branch (0: the model's)
Status apply_threads(adascale_session* s) {
  const int most = s->selected->max_threads();
  return s->selected->set_threads(s->threads > 0 ? std::min(s->threads, most) : most);
}
}  // namespace

adascale_status adascale_session_set_threads(adascale_session* s, int threads) {
  if (!s) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  const int most = s->model->setup.threads;
  if (threads < 0 || threads > most)
    return fail(s, ADASCALE_ERROR_INVALID_ARGUMENT,
                "threads " + std::to_string(threads) + " outside [0, " + std::to_string(most) +
                    "] (the model was opened with " + std::to_string(most) + ")");
  s->threads = threads;
  return ADASCALE_OK;
}

int adascale_session_threads(const adascale_session* s) { return s ? s->threads : -1; }

int adascale_session_max_threads(const adascale_session* s) {
  return s ? adascale::session_model_threads(s) : -1;
}

adascale_status adascale_session_run(adascale_session* s, const float* input, size_t input_count,
                                     float* logits, size_t logits_capacity) {
  if (!s) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  if (!s->selected)
    return fail(s, ADASCALE_ERROR_NO_BRANCH_SELECTED, "no branch selected (call adascale_select)");
  if (!input || !logits) return fail(s, ADASCALE_ERROR_INVALID_ARGUMENT, "null input or logits");
  return guarded(&s->last_error, [&]() -> adascale_status {
    const adascale::BundleInput& in = s->model->bundle->input();
    const size_t C = in.shape_nchw[1], H = in.shape_nchw[2], W = in.shape_nchw[3];
    const size_t image = C * H * W;
    if (input_count == 0 || input_count % image != 0)
      return fail(s, ADASCALE_ERROR_INVALID_ARGUMENT,
                  "input has " + std::to_string(input_count) +
                      " floats, not a whole number of images of " + std::to_string(image) +
                      " (NCHW " + std::to_string(C) + "x" + std::to_string(H) + "x" +
                      std::to_string(W) + ")");
    const size_t batch = input_count / image;
    // NCHW -> NHWC with per-channel normalization, in one pass.
    s->scratch.resize(input_count);
    for (size_t n = 0; n < batch; ++n)
      for (size_t c = 0; c < C; ++c) {
        const float mean = in.mean.empty() ? 0.0f : in.mean[c];
        const float inv_std = in.std.empty() ? 1.0f : 1.0f / in.std[c];
        const float* src = input + (n * C + c) * H * W;
        float* dst = s->scratch.data() + n * image + c;
        for (size_t p = 0; p < H * W; ++p) dst[p * C] = (src[p] - mean) * inv_std;
      }
    Status st = apply_threads(s);
    if (st.ok())
      st =
          s->selected->run(s->scratch.data(), static_cast<int64_t>(batch), logits, logits_capacity);
    if (!st.ok()) return fail(s, st);
    evict(s);  // a larger batch may have grown the arena
    return ADASCALE_OK;
  });
}

adascale_status adascale_session_profile(adascale_session* s, int runs,
                                         adascale_node_timing* timings, size_t capacity,
                                         size_t* count) {
  if (!s) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  if (!s->selected)
    return fail(s, ADASCALE_ERROR_NO_BRANCH_SELECTED, "no branch selected (call adascale_select)");
  if (!count || (capacity > 0 && !timings))
    return fail(s, ADASCALE_ERROR_INVALID_ARGUMENT, "null timings or count");
  if (runs < 1) return fail(s, ADASCALE_ERROR_INVALID_ARGUMENT, "profile needs runs >= 1");
  if (capacity == 0) {  // the count alone: nothing to time
    *count = s->selected->node_count();
    return ADASCALE_OK;
  }
  return guarded(&s->last_error, [&]() -> adascale_status {
    const adascale::Shape& shape = s->selected->input_shape();
    const size_t elements = static_cast<size_t>(adascale::shape_elements(shape));
    std::vector<float> zeros;
    const float* input = s->scratch.data();
    if (s->scratch.size() != elements) {
      zeros.assign(elements, 0.0f);
      input = zeros.data();
    }
    Status st = apply_threads(s);
    if (st.ok()) st = s->selected->profile(input, runs, &s->profile);
    if (!st.ok()) return fail(s, st);
    *count = s->profile.size();
    for (size_t i = 0; i < s->profile.size() && i < capacity; ++i) {
      const adascale::NodeTiming& t = s->profile[i];
      timings[i] = {t.op.c_str(),
                    t.output.c_str(),
                    t.layer.c_str(),
                    adascale::dtype_name(t.dtype),
                    t.kernel == "reference" ? 1 : 0,
                    t.median_us,
                    t.kernel.c_str()};
    }
    return ADASCALE_OK;
  });
}

// ---- single handle: one model and one session owned together ----

adascale_status adascale_open_ex(const char* path, adascale_backend backend, int threads,
                                 adascale_runtime** handle, char* error_message,
                                 size_t error_message_capacity) {
  if (!handle) return ADASCALE_ERROR_INVALID_ARGUMENT;
  *handle = nullptr;
  std::shared_ptr<adascale_model> model;
  adascale_status status = open_model(path, backend_value(&backend), threads, &model);
  if (status == ADASCALE_OK)
    status = guarded(&open_error, [&] {
      auto rt = std::make_unique<adascale_runtime>();
      rt->latency = model->latency;
      rt->model = std::move(model);
      *handle = rt.release();
      return ADASCALE_OK;
    });
  if (status != ADASCALE_OK && error_message && error_message_capacity) {
    std::strncpy(error_message, open_error.c_str(), error_message_capacity - 1);
    error_message[error_message_capacity - 1] = '\0';
  }
  return status;
}

adascale_status adascale_open(const char* path, adascale_runtime** handle) {
  return adascale_open_ex(path, ADASCALE_BACKEND_XNNPACK, 1, handle, nullptr, 0);
}

void adascale_close(adascale_runtime* handle) {
  if (in_switch_callback())
    return;  // freeing the loop under its own step: refused, handle stays open
  delete handle;
}

const char* adascale_last_error(const adascale_runtime* handle) {
  return handle ? handle->last_error.c_str() : "null handle";
}

adascale_status adascale_branch_count(const adascale_runtime* handle, size_t* count) {
  return adascale_model_branch_count(handle ? handle->model.get() : nullptr, count);
}

adascale_status adascale_branch_info_at(const adascale_runtime* handle, size_t index,
                                        adascale_branch_info* info) {
  return adascale_model_branch_info_at(handle ? handle->model.get() : nullptr, index, info);
}

adascale_status adascale_input_shape(const adascale_runtime* handle, int64_t dims[4]) {
  return adascale_model_input_shape(handle ? handle->model.get() : nullptr, dims);
}

adascale_status adascale_class_count(const adascale_runtime* handle, size_t* count) {
  return adascale_model_class_count(handle ? handle->model.get() : nullptr, count);
}

adascale_status adascale_set_memory_budget(adascale_runtime* handle, size_t bytes) {
  return adascale_session_set_memory_budget(handle, bytes);
}

adascale_status adascale_select(adascale_runtime* handle, const char* name) {
  return adascale_session_select(handle, name);
}

adascale_status adascale_cache_info(const adascale_runtime* handle, size_t* cached_branches,
                                    size_t* bytes) {
  return adascale_session_cache_info(handle, cached_branches, bytes);
}

int adascale_is_cached(const adascale_runtime* handle, const char* name) {
  return adascale_session_is_cached(handle, name);
}

adascale_status adascale_selected_arena_bytes(const adascale_runtime* handle, size_t* bytes) {
  return adascale_session_selected_arena_bytes(handle, bytes);
}

adascale_status adascale_run(adascale_runtime* handle, const float* input, size_t input_count,
                             float* logits, size_t logits_capacity) {
  return adascale_session_run(handle, input, input_count, logits, logits_capacity);
}

adascale_status adascale_set_threads(adascale_runtime* handle, int threads) {
  return adascale_session_set_threads(handle, threads);
}

int adascale_threads(const adascale_runtime* handle) { return adascale_session_threads(handle); }

int adascale_max_threads(const adascale_runtime* handle) {
  return adascale_session_max_threads(handle);
}

adascale_status adascale_profile(adascale_runtime* handle, int runs, adascale_node_timing* timings,
                                 size_t capacity, size_t* count) {
  return adascale_session_profile(handle, runs, timings, capacity, count);
}

}  // extern "C"
