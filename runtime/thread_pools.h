// ThreadPools: one pthreadpool per thread count from 2 to a maximum, so that each inference can
// run on as many threads as the moment allows (a pthreadpool always uses all of its threads).
// A count's pool is created the first time it is asked for, so a large maximum costs threads
// only for the counts that run; pools are shared by every branch of a backend.
#pragma once

#include <pthreadpool.h>

#include <memory>
#include <mutex>
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
  // The pool of `threads` threads, clamped to [1, max_threads], created on first use (thread
  // safe); null for one thread, and when the system cannot start the threads (the inference
  // then runs on the calling thread).
  pthreadpool_t get(int threads) const;

 private:
  int max_threads_ = 1;
  mutable std::unique_ptr<std::once_flag[]> once_;  // index: threads - 2
  mutable std::vector<pthreadpool_t> pools_;        // written once, under once_
};

}  // namespace adascale
