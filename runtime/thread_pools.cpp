#include "runtime/thread_pools.h"

#include <algorithm>

namespace adascale {

ThreadPools::ThreadPools(int max_threads) : max_threads_(std::max(1, max_threads)) {
  for (int t = 2; t <= max_threads_; ++t) {
    pthreadpool_t pool = pthreadpool_create(static_cast<size_t>(t));
    // a pool that cannot be made (no threads left) leaves the counts from there on serial
    if (!pool) {
      max_threads_ = t - 1;
      break;
    }
    pools_.push_back(pool);
  }
}

ThreadPools::~ThreadPools() {
  for (pthreadpool_t pool : pools_) pthreadpool_destroy(pool);
}

pthreadpool_t ThreadPools::get(int threads) const {
  const int t = std::min(threads, max_threads_);
  return t >= 2 ? pools_[static_cast<size_t>(t - 2)] : nullptr;
}

}  // namespace adascale
