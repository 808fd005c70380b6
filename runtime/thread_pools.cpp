#include "runtime/thread_pools.h"

#include <algorithm>

namespace adascale {

ThreadPools::ThreadPools(int max_threads)
    : max_threads_(std::max(1, max_threads)),
      once_(new std::once_flag[static_cast<size_t>(max_threads_)]),
      pools_(static_cast<size_t>(max_threads_), nullptr) {}

ThreadPools::~ThreadPools() {
  for (pthreadpool_t pool : pools_)
    if (pool) pthreadpool_destroy(pool);
}

pthreadpool_t ThreadPools::get(int threads) const {
  const int t = std::min(threads, max_threads_);
  if (t < 2) return nullptr;
  const size_t i = static_cast<size_t>(t - 2);
  std::call_once(once_[i], [&] { pools_[i] = pthreadpool_create(static_cast<size_t>(t)); });
  return pools_[i];
}

}  // namespace adascale
