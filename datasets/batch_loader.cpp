// BatchLoader: deterministic, prefetching batch assembly.
#include "datasets/batch_loader.h"

#include <algorithm>
#include <random>

#include "datasets/detail.h"

namespace adascale::data {

namespace {

// per-channel table of normalized values: one lookup per pixel instead of a divide
std::vector<float> normalization_table(const ChannelStats& stats, int64_t channels) {
  if (stats.mean.size() != stats.std.size())
    throw DataError("BatchLoader: normalize has " + std::to_string(stats.mean.size()) +
                    " means but " + std::to_string(stats.std.size()) + " stds");
  const size_t n = stats.mean.size();
  if (n != 0 && n != 1 && n != static_cast<size_t>(channels))
    throw DataError("BatchLoader: normalize has " + std::to_string(n) + " channels, images have " +
                    std::to_string(channels));
  std::vector<float> lut(static_cast<size_t>(channels) * 256);
  for (int64_t c = 0; c < channels; ++c) {
    const size_t k = n == 1 ? 0 : static_cast<size_t>(c);
    const double mean = n == 0 ? 0.0 : stats.mean[k];
    const double sd = n == 0 ? 1.0 : stats.std[k];
    if (!(sd > 0.0))
      throw DataError("BatchLoader: normalize std of channel " + std::to_string(c) +
                      " is not positive");
    for (int v = 0; v < 256; ++v)
      lut[static_cast<size_t>(c) * 256 + static_cast<size_t>(v)] =
          static_cast<float>((v / 255.0 - mean) / sd);
  }
  return lut;
}

}  // namespace

BatchLoader::BatchLoader(DatasetPtr set, std::vector<int64_t> indices, LoaderOptions options)
    : set_(std::move(set)), indices_(std::move(indices)), options_(std::move(options)) {
  if (!set_) throw DataError("BatchLoader: no dataset");
  if (options_.batch_size < 1)
    throw DataError("BatchLoader: batch_size must be >= 1, got " +
                    std::to_string(options_.batch_size));
  if (options_.workers < 0)
    throw DataError("BatchLoader: workers must be >= 0, got " + std::to_string(options_.workers));
  if (options_.prefetch < 1)
    throw DataError("BatchLoader: prefetch must be >= 1, got " + std::to_string(options_.prefetch));
  if (options_.shard_count < 1 || options_.shard_rank < 0 ||
      options_.shard_rank >= options_.shard_count)
    throw DataError("BatchLoader: shard " + std::to_string(options_.shard_rank) + " of " +
                    std::to_string(options_.shard_count) + " does not exist");
  if (options_.shard_count > options_.batch_size)
    throw DataError("BatchLoader: a batch of " + std::to_string(options_.batch_size) +
                    " cannot be split into " + std::to_string(options_.shard_count) + " shards");
  if (options_.augment.crop_padding < 0)
    throw DataError("BatchLoader: crop_padding must be >= 0, got " +
                    std::to_string(options_.augment.crop_padding));
  for (int64_t i : indices_)
    if (i < 0 || i >= set_->size())
      throw DataError("BatchLoader: index " + std::to_string(i) + " outside " + set_->origin() +
                      " (" + std::to_string(set_->size()) + " examples)");
  lut_ = normalization_table(options_.normalize, set_->shape().channels);
}

BatchLoader::~BatchLoader() { stop_workers(); }

int64_t BatchLoader::batches_per_epoch() const {
  const int64_t n = examples();
  const int64_t b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

int64_t BatchLoader::global_rows(int64_t batch) const {
  return std::clamp<int64_t>(examples() - batch * options_.batch_size, 0, options_.batch_size);
}

void BatchLoader::start_epoch(int64_t epoch) {
  if (epoch < 0) throw DataError("BatchLoader: epoch must be >= 0, got " + std::to_string(epoch));
  stop_workers();
  order_ = indices_;
  if (options_.shuffle) {
    std::mt19937_64 rng(detail::hash_seed(options_.seed, static_cast<uint64_t>(epoch)));
    detail::shuffle(order_, rng);
  }
  epoch_ = epoch;
  next_batch_ = 0;
  claimed_ = 0;
  stopping_ = false;
  worker_error_ = nullptr;
  error_batch_ = -1;
  slots_.assign(static_cast<size_t>(options_.prefetch), std::nullopt);
  if (options_.workers > 0 && batches_per_epoch() > 0)
    for (int w = 0; w < options_.workers; ++w) workers_.emplace_back([this] { worker_loop(); });
}

std::optional<Batch> BatchLoader::next() {
  if (epoch_ < 0) throw DataError("BatchLoader: start_epoch must be called before next()");
  if (next_batch_ >= batches_per_epoch()) return std::nullopt;
  if (options_.workers == 0) {
    Batch batch = assemble(epoch_, next_batch_);
    ++next_batch_;
    return batch;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  std::optional<Batch>& slot = slots_[static_cast<size_t>(next_batch_) % slots_.size()];
  ready_cv_.wait(lock, [&] { return slot.has_value() || error_batch_ == next_batch_; });
  // batches before a failed one are still delivered, so the error surfaces at the same point
  // whatever the number of workers
  if (!slot) std::rethrow_exception(worker_error_);
  std::optional<Batch> batch = std::move(slot);
  slot.reset();
  ++next_batch_;
  lock.unlock();
  space_cv_.notify_all();
  return batch;
}

void BatchLoader::worker_loop() {
  const int64_t total = batches_per_epoch();
  const int64_t ring = static_cast<int64_t>(slots_.size());
  for (;;) {
    int64_t b = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // a worker may only claim a batch whose ring slot the consumer has already emptied
      space_cv_.wait(lock, [&] {
        return stopping_ || error_batch_ >= 0 || claimed_ >= total || claimed_ < next_batch_ + ring;
      });
      if (stopping_ || error_batch_ >= 0 || claimed_ >= total) return;
      b = claimed_++;
    }
    std::optional<Batch> batch;
    std::exception_ptr error;
    try {
      batch = assemble(epoch_, b);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error) {
        if (error_batch_ < 0 || b < error_batch_) {
          error_batch_ = b;
          worker_error_ = error;
        }
      } else {
        slots_[static_cast<size_t>(b % ring)] = std::move(batch);
      }
    }
    ready_cv_.notify_all();
    if (error) space_cv_.notify_all();  // idle workers see the error and exit
  }
}

void BatchLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  space_cv_.notify_all();
  ready_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

Batch BatchLoader::assemble(int64_t epoch, int64_t batch) const {
  const ImageShape shape = set_->shape();
  const int64_t C = shape.channels, H = shape.height, W = shape.width;
  const int64_t begin = batch * options_.batch_size;
  const int64_t count = global_rows(batch);
  // this shard's rows of the global batch (all of them unsharded)
  const int64_t lo = count * options_.shard_rank / options_.shard_count;
  const int64_t hi = count * (options_.shard_rank + 1) / options_.shard_count;
  const int64_t pad = options_.augment.crop_padding;
  const bool flip_enabled = options_.augment.horizontal_flip;

  Batch out;
  const auto pinned = torch::TensorOptions().pinned_memory(options_.pin_memory);
  out.images = torch::empty({hi - lo, C, H, W}, pinned.dtype(torch::kFloat32));
  out.labels = torch::empty({hi - lo}, pinned.dtype(torch::kInt64));
  float* images = out.images.data_ptr<float>();
  int64_t* labels = out.labels.data_ptr<int64_t>();

  // one generator per batch: its draws do not depend on which thread assembles it; every row
  // draws, so a shard's rows get the crops and flips they get in the whole batch
  std::mt19937_64 rng(
      detail::hash_seed(options_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(batch)));
  for (int64_t row = 0; row < hi; ++row) {
    // offsets of the crop window inside the zero-padded image, minus the padding
    int64_t dy = 0, dx = 0;
    bool flip = false;
    if (pad > 0) {
      dy = static_cast<int64_t>(detail::uniform_below(rng, static_cast<uint64_t>(2 * pad + 1))) -
           pad;
      dx = static_cast<int64_t>(detail::uniform_below(rng, static_cast<uint64_t>(2 * pad + 1))) -
           pad;
    }
    if (flip_enabled) flip = (rng() >> 63) != 0;
    if (row < lo) continue;
    const int64_t k = row - lo;
    const int64_t index = order_[static_cast<size_t>(begin + row)];
    labels[k] = set_->label(index);
    const uint8_t* src = set_->pixels(index);

    float* dst = images + k * C * H * W;
    for (int64_t c = 0; c < C; ++c) {
      const float* lut = lut_.data() + c * 256;
      const float zero = lut[0];  // padding is pixel value 0, normalized like any other pixel
      const uint8_t* plane = src + c * H * W;
      for (int64_t y = 0; y < H; ++y) {
        float* row = dst + (c * H + y) * W;
        const int64_t sy = y + dy;
        if (sy < 0 || sy >= H) {
          std::fill(row, row + W, zero);
          continue;
        }
        const uint8_t* srow = plane + sy * W;
        // crop, then flip the cropped window: output x reads window column W-1-x
        for (int64_t x = 0; x < W; ++x) {
          const int64_t sx = (flip ? W - 1 - x : x) + dx;
          row[x] = (sx >= 0 && sx < W) ? lut[srow[sx]] : zero;
        }
      }
    }
  }
  return out;
}

}  // namespace adascale::data
