// BatchLoader: turns a Dataset plus a list of indices into normalized float batches (NCHW).
//
// Batches are assembled on worker threads and handed out in order. Everything random (the epoch's
// order, each batch's crops and flips) is drawn from generators seeded by (seed, epoch, batch), so
// the same seed gives the same batches whatever the number of workers, and a run resumed at an
// epoch boundary sees exactly the batches an uninterrupted run would.
#pragma once

#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "datasets/dataset.h"

namespace adascale::data {

struct Augmentation {
  int64_t crop_padding = 0;  // random crop of the original size after zero padding (0 = off)
  bool horizontal_flip = false;
};

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;
  Augmentation augment;
  ChannelStats normalize;  // empty mean/std: only scale to [0,1]
  int workers = 2;         // batch-assembly threads (0 = assemble on the calling thread)
  int prefetch = 4;        // batches kept ready ahead of the consumer
  uint64_t seed = 0;
  // data-parallel sharding: batch_size is the global batch; this loader hands out rows
  // [n*r/k, n*(r+1)/k) of each global batch of n rows (r = shard_rank, k = shard_count), with the
  // crops and flips those rows get in the unsharded batch, so k shards together are exactly the
  // batches of one loader whatever k is
  int64_t shard_rank = 0;
  int64_t shard_count = 1;
  // batches in page-locked memory, for asynchronous copies to a CUDA device (CUDA builds only)
  bool pin_memory = false;
};

struct Batch {
  torch::Tensor images;  // float32 [B, C, H, W], normalized
  torch::Tensor labels;  // int64 [B]
};

class BatchLoader {
 public:
  BatchLoader(DatasetPtr set, std::vector<int64_t> indices, LoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // begins an epoch (restarts workers); must be called before next()
  void start_epoch(int64_t epoch);
  // the next batch of the current epoch, or nullopt when the epoch is done
  std::optional<Batch> next();
  int64_t batches_per_epoch() const;
  // rows of the global batch `batch` (all shards together)
  int64_t global_rows(int64_t batch) const;
  int64_t examples() const { return static_cast<int64_t>(indices_.size()); }
  const LoaderOptions& options() const { return options_; }

 private:
  Batch assemble(int64_t epoch, int64_t batch) const;
  void worker_loop();
  void stop_workers();

  DatasetPtr set_;
  std::vector<int64_t> indices_;
  LoaderOptions options_;
  std::vector<float> lut_;  // [channel][0..255] -> normalized value
  std::vector<int64_t> order_;
  int64_t epoch_ = -1;
  int64_t next_batch_ = 0;

  std::mutex mutex_;
  std::condition_variable ready_cv_, space_cv_;
  std::vector<std::optional<Batch>> slots_;  // ring of prefetched batches, indexed batch % size
  std::vector<std::thread> workers_;
  int64_t claimed_ = 0;  // next batch index a worker will assemble
  bool stopping_ = false;
  std::exception_ptr worker_error_;
  int64_t error_batch_ = -1;  // batch whose assembly threw; next() rethrows when it gets there
};

}  // namespace adascale::data
