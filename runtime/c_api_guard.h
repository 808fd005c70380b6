// Internal to the C API (c_api.cpp, adapt/c_api_adapt.cpp): the one exception guard, the
// switch-callback re-entrancy flag both files check, and what c_api.cpp lends the loop's half.
#pragma once

#include <exception>
#include <memory>
#include <new>
#include <string>

#include "adascale.h"
#include "runtime/latency_source.h"

namespace adascale {

// >0 while this thread runs a switch callback (adapt/c_api_adapt.cpp raises it); calls that would
// change a session or its loop under the step refuse then (adascale.h lists them).
extern thread_local int switch_callback_depth;
inline bool in_switch_callback() { return switch_callback_depth > 0; }

// Defined in c_api.cpp.
adascale_session* session_of(adascale_runtime* handle);  // a handle's session; null for null
const adascale_session* session_of(const adascale_runtime* handle);
std::shared_ptr<void>& adapt_state_slot(adascale_session* session);  // the loop's state
int session_model_threads(const adascale_session* session);  // the model's threads per inference
// The session's last error, or null inside a switch callback: the callback runs on the loop's
// thread while the session's own thread may be writing the message.
std::string* last_error_slot(const adascale_session* session);
const ModelSetup& model_setup(const adascale_model* model);
// the latencies the session's loop predicts from (latency_source.h)
LatencySource& latency_source_slot(adascale_session* session);
const LatencySource& latency_source_of(const adascale_session* session);

// Defined in adapt/c_api_adapt.cpp.
bool adapt_loop_running(const adascale_session* session);
// Builds the session's loop again (when it has one) from the current latency source; keeps
// budgets, options and callback, forgets corrections. Only while it is stopped.
void rebuild_adapt_loop(adascale_session* session);

// Runs body(), which returns an adascale_status; no exception crosses the C boundary. An
// exception becomes a status and its message goes to *last_error when that is not null.
template <typename F>
adascale_status guarded(std::string* last_error, F&& body) noexcept {
  const auto fail = [last_error](adascale_status code, const char* prefix, const char* what) {
    if (last_error) {
      try {
        *last_error = std::string(prefix) + what;
      } catch (...) {  // out of memory for the message too: keep the code alone
      }
    }
    return code;
  };
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(ADASCALE_ERROR_OUT_OF_MEMORY, "out of memory", "");
  } catch (const std::exception& e) {
    return fail(ADASCALE_ERROR_BACKEND, "internal error: ", e.what());
  } catch (...) {
    return fail(ADASCALE_ERROR_BACKEND, "internal error", "");
  }
}

}  // namespace adascale
