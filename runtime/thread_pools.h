// ThreadPools: one pthreadpool per thread count from 2 to a maximum, so that each inference can
// run on as many threads as the moment allows (a pthreadpool always uses all of its threads).
// Threads of a pool that runs nothing sleep; pools are shared by every branch of a backend.
#pragma once

#include <pthreadpool.h>

#include <vector>

namespace adascale {

class ThreadPools {
 public:
  // max_threads <= 1: no pool, everything runs on the calling thread
  explicit ThreadPools(int max_threads);
  ~ThreadPools();
  ThreadPools(const ThreadPools&) = delete;
  ThreadPools& operator=(const ThreadPools&) = delete;

  int max_threads() const { return max_threads_; }
  // the pool of `threads` threads, clamped to [1, max_threads]; null for one thread
  pthreadpool_t get(int threads) const;

 private:
  int max_threads_ = 1;
  std::vector<pthreadpool_t> pools_;  // index: threads - 2
};

}  // namespace adascale
