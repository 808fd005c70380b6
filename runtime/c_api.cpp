// C API over Bundle + Backend with an LRU cache of prepared branches bounded by a byte budget.
#include <cstring>
#include <exception>
#include <list>
#include <memory>
#include <new>
#include <string>

#include "adascale.h"
#include "runtime/backend.h"
#include "runtime/bundle.h"

struct adascale_runtime {
  std::unique_ptr<adascale::Bundle> bundle;
  std::unique_ptr<adascale::Backend> backend;
  // Most recently used first.
  std::list<std::unique_ptr<adascale::PreparedBranch>> cache;
  size_t budget_bytes = 256u << 20;
  adascale::PreparedBranch* selected = nullptr;
  std::vector<float> scratch;                 // NHWC normalized input
  std::vector<adascale::NodeTiming> profile;  // backs the strings adascale_profile hands out
  std::string last_error;
  // State of the adaptation loop (runtime/adapt/c_api_adapt.cpp); declared last so that the loop
  // thread stops before anything else is destroyed.
  std::shared_ptr<void> adapt;
};

namespace adascale {
// >0 while this thread runs a switch callback (runtime/adapt/c_api_adapt.cpp sets it); calls that
// would change the loop or the handle under the step refuse then (adascale.h lists them)
thread_local int switch_callback_depth = 0;
bool in_switch_callback() { return switch_callback_depth > 0; }
}  // namespace adascale

namespace {

using adascale::ErrorCode;

using adascale::in_switch_callback;
using adascale::Status;

adascale_status fail(adascale_runtime* rt, const Status& status) {
  if (rt) rt->last_error = status.message;
  return static_cast<adascale_status>(status.code);
}

adascale_status fail(adascale_runtime* rt, adascale_status code, const std::string& message) {
  if (rt) rt->last_error = message;
  return code;
}

size_t cached_bytes(const adascale_runtime* rt) {
  size_t total = 0;
  for (const auto& prepared : rt->cache) total += prepared->memory_bytes();
  return total;
}

// Drops least recently used branches until the cache fits; never the selected one.
void evict(adascale_runtime* rt) {
  auto it = rt->cache.end();
  while (cached_bytes(rt) > rt->budget_bytes && it != rt->cache.begin()) {
    --it;
    if (it->get() != rt->selected) it = rt->cache.erase(it);
  }
}

template <typename F>
adascale_status guarded(adascale_runtime* rt, F body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(rt, ADASCALE_ERROR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(rt, ADASCALE_ERROR_BACKEND, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(rt, ADASCALE_ERROR_BACKEND, "internal error");
  }
}

}  // namespace

extern "C" {

adascale_status adascale_open_ex(const char* path, adascale_backend backend, int threads,
                                 adascale_runtime** handle, char* error_message,
                                 size_t error_message_capacity) {
  if (!handle) return ADASCALE_ERROR_INVALID_ARGUMENT;
  *handle = nullptr;
  auto report = [&](adascale_status code, const std::string& message) {
    if (error_message && error_message_capacity) {
      std::strncpy(error_message, message.c_str(), error_message_capacity - 1);
      error_message[error_message_capacity - 1] = '\0';
    }
    return code;
  };
  if (!path) return report(ADASCALE_ERROR_INVALID_ARGUMENT, "null path");
  if (backend != ADASCALE_BACKEND_XNNPACK && backend != ADASCALE_BACKEND_REFERENCE &&
      backend != ADASCALE_BACKEND_XNNPACK_PLAIN)
    return report(ADASCALE_ERROR_INVALID_ARGUMENT,
                  "unknown backend " + std::to_string(static_cast<int>(backend)));
  try {
    auto rt = std::make_unique<adascale_runtime>();
    Status s = adascale::Bundle::open(path, &rt->bundle);
    if (!s.ok()) return report(static_cast<adascale_status>(s.code), s.message);
    if (backend == ADASCALE_BACKEND_REFERENCE)
      rt->backend = adascale::make_reference_backend();
    else
      rt->backend =
          adascale::make_xnnpack_backend(threads, backend != ADASCALE_BACKEND_XNNPACK_PLAIN);
    *handle = rt.release();
    return ADASCALE_OK;
  } catch (const std::bad_alloc&) {
    return report(ADASCALE_ERROR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return report(ADASCALE_ERROR_BACKEND, std::string("internal error: ") + e.what());
  }
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
  if (!handle || !count) return ADASCALE_ERROR_INVALID_ARGUMENT;
  *count = handle->bundle->branches().size();
  return ADASCALE_OK;
}

adascale_status adascale_branch_info_at(const adascale_runtime* handle, size_t index,
                                        adascale_branch_info* info) {
  if (!handle || !info) return ADASCALE_ERROR_INVALID_ARGUMENT;
  const auto& branches = handle->bundle->branches();
  if (index >= branches.size()) return ADASCALE_ERROR_OUT_OF_RANGE;
  info->name = branches[index].name.c_str();
  info->costs_json = branches[index].costs_json.c_str();
  return ADASCALE_OK;
}

adascale_status adascale_input_shape(const adascale_runtime* handle, int64_t dims[4]) {
  if (!handle || !dims) return ADASCALE_ERROR_INVALID_ARGUMENT;
  for (int i = 0; i < 4; ++i) dims[i] = handle->bundle->input().shape_nchw[i];
  return ADASCALE_OK;
}

adascale_status adascale_class_count(const adascale_runtime* handle, size_t* count) {
  if (!handle || !count) return ADASCALE_ERROR_INVALID_ARGUMENT;
  *count = handle->bundle->classes().size();
  return ADASCALE_OK;
}

adascale_status adascale_set_memory_budget(adascale_runtime* handle, size_t bytes) {
  if (!handle) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  handle->budget_bytes = bytes;
  evict(handle);
  return ADASCALE_OK;
}

adascale_status adascale_select(adascale_runtime* rt, const char* name) {
  if (!rt) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  if (!name) return fail(rt, ADASCALE_ERROR_INVALID_ARGUMENT, "null branch name");
  return guarded(rt, [&]() -> adascale_status {
    for (auto it = rt->cache.begin(); it != rt->cache.end(); ++it) {
      if ((*it)->name() == name) {
        rt->cache.splice(rt->cache.begin(), rt->cache, it);  // cheap switch: no re-packing
        rt->selected = rt->cache.front().get();
        return ADASCALE_OK;
      }
    }
    const adascale::Branch* branch = rt->bundle->find_branch(name);
    if (!branch) return fail(rt, ADASCALE_ERROR_NOT_FOUND, std::string("no branch '") + name + "'");
    std::unique_ptr<adascale::PreparedBranch> prepared;
    Status s = rt->backend->prepare(*branch, rt->bundle->constants(), rt->bundle->input().nhwc(),
                                    &prepared);
    if (!s.ok()) return fail(rt, s);
    rt->cache.push_front(std::move(prepared));
    rt->selected = rt->cache.front().get();
    evict(rt);
    return ADASCALE_OK;
  });
}

adascale_status adascale_cache_info(const adascale_runtime* handle, size_t* cached_branches,
                                    size_t* bytes) {
  if (!handle) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (cached_branches) *cached_branches = handle->cache.size();
  if (bytes) *bytes = cached_bytes(handle);
  return ADASCALE_OK;
}

int adascale_is_cached(const adascale_runtime* handle, const char* name) {
  if (!handle || !name) return 0;
  for (const auto& prepared : handle->cache)
    if (prepared->name() == name) return 1;
  return 0;
}

adascale_status adascale_selected_arena_bytes(const adascale_runtime* handle, size_t* bytes) {
  if (!handle || !bytes) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (!handle->selected) return ADASCALE_ERROR_NO_BRANCH_SELECTED;
  *bytes = handle->selected->arena_bytes();
  return ADASCALE_OK;
}

adascale_status adascale_run(adascale_runtime* rt, const float* input, size_t input_count,
                             float* logits, size_t logits_capacity) {
  if (!rt) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  if (!rt->selected)
    return fail(rt, ADASCALE_ERROR_NO_BRANCH_SELECTED, "no branch selected (call adascale_select)");
  if (!input || !logits) return fail(rt, ADASCALE_ERROR_INVALID_ARGUMENT, "null input or logits");
  return guarded(rt, [&]() -> adascale_status {
    const adascale::BundleInput& in = rt->bundle->input();
    const size_t C = in.shape_nchw[1], H = in.shape_nchw[2], W = in.shape_nchw[3];
    const size_t image = C * H * W;
    if (input_count == 0 || input_count % image != 0)
      return fail(rt, ADASCALE_ERROR_INVALID_ARGUMENT,
                  "input has " + std::to_string(input_count) +
                      " floats, not a whole number of images of " + std::to_string(image) +
                      " (NCHW " + std::to_string(C) + "x" + std::to_string(H) + "x" +
                      std::to_string(W) + ")");
    const size_t batch = input_count / image;
    // NCHW -> NHWC with per-channel normalization, in one pass.
    rt->scratch.resize(input_count);
    for (size_t n = 0; n < batch; ++n)
      for (size_t c = 0; c < C; ++c) {
        const float mean = in.mean.empty() ? 0.0f : in.mean[c];
        const float inv_std = in.std.empty() ? 1.0f : 1.0f / in.std[c];
        const float* src = input + (n * C + c) * H * W;
        float* dst = rt->scratch.data() + n * image + c;
        for (size_t p = 0; p < H * W; ++p) dst[p * C] = (src[p] - mean) * inv_std;
      }
    Status s =
        rt->selected->run(rt->scratch.data(), static_cast<int64_t>(batch), logits, logits_capacity);
    if (!s.ok()) return fail(rt, s);
    evict(rt);  // a larger batch may have grown the arena
    return ADASCALE_OK;
  });
}

adascale_status adascale_profile(adascale_runtime* rt, int runs, adascale_node_timing* timings,
                                 size_t capacity, size_t* count) {
  if (!rt) return ADASCALE_ERROR_INVALID_ARGUMENT;
  if (in_switch_callback()) return ADASCALE_ERROR_IN_CALLBACK;
  if (!rt->selected)
    return fail(rt, ADASCALE_ERROR_NO_BRANCH_SELECTED, "no branch selected (call adascale_select)");
  if (!count || (capacity > 0 && !timings))
    return fail(rt, ADASCALE_ERROR_INVALID_ARGUMENT, "null timings or count");
  if (runs < 1) return fail(rt, ADASCALE_ERROR_INVALID_ARGUMENT, "profile needs runs >= 1");
  if (capacity == 0) {  // the count alone: nothing to time
    *count = rt->selected->node_count();
    return ADASCALE_OK;
  }
  return guarded(rt, [&]() -> adascale_status {
    const adascale::Shape& shape = rt->selected->input_shape();
    const size_t elements = static_cast<size_t>(adascale::shape_elements(shape));
    std::vector<float> zeros;
    const float* input = rt->scratch.data();
    if (rt->scratch.size() != elements) {
      zeros.assign(elements, 0.0f);
      input = zeros.data();
    }
    Status s = rt->selected->profile(input, runs, &rt->profile);
    if (!s.ok()) return fail(rt, s);
    *count = rt->profile.size();
    for (size_t i = 0; i < rt->profile.size() && i < capacity; ++i) {
      const adascale::NodeTiming& t = rt->profile[i];
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

}  // extern "C"

namespace adascale {
// Lets the adaptation C API (runtime/adapt/c_api_adapt.cpp) keep its state in the handle.
std::shared_ptr<void>& adapt_state_slot(adascale_runtime* handle) { return handle->adapt; }
std::string& last_error_slot(adascale_runtime* handle) { return handle->last_error; }
}  // namespace adascale
