#include "trainer/epoch_loop.h"

#include <chrono>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "trainer/progress.h"
#include "trainer/rank_group.h"

namespace adascale::trainer {

void StepPosition::check_finite(double loss, double lr) const {
  if (std::isfinite(loss)) return;
  std::ostringstream what;
  what << "training diverged: loss is " << loss << " at epoch " << epoch + 1 << "/" << epochs
       << ", step " << step + 1 << "/" << steps_per_epoch << " (lr " << lr << "); "
       << (epoch > 0 ? "the checkpoint of epoch " + std::to_string(epoch) + " is kept"
                     : std::string("no checkpoint written"));
  throw std::runtime_error(what.str());
}

void EpochLoop::run(data::BatchLoader& loader, int64_t begin, int64_t end) const {
  const int64_t steps_per_epoch = loader.batches_per_epoch();
  for (int64_t epoch = begin; epoch < end; ++epoch) {
    if (before_epoch) before_epoch();
    loader.start_epoch(loader_epoch_offset + epoch);
    // one progress line per run: rank 0's
    ProgressBar bar(label + " " + std::to_string(epoch + 1) + "/" + std::to_string(epochs),
                    steps_per_epoch, current_rank() == 0 ? stderr : nullptr);
    EpochResult r;
    r.epoch = epoch;
    double loss_sum = 0.0;
    int64_t correct = 0;
    StepPosition pos{epoch, epochs, 0, steps_per_epoch};
    while (auto batch = loader.next()) {
      const auto t0 = std::chrono::steady_clock::now();
      StepResult s;
      try {
        s = step(*batch, pos);
      } catch (...) {
        bar.finish();
        throw;
      }
      loss_sum += s.loss * s.images;
      correct += s.correct;
      r.images += s.images;
      ++pos.step;
      r.step_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      bar.update(pos.step, r.images, loss_sum / r.images, static_cast<double>(correct) / r.images);
    }
    bar.finish();
    r.epoch_seconds = bar.elapsed_seconds();
    r.loss = r.images ? loss_sum / r.images : 0.0;
    r.accuracy = r.images ? static_cast<double>(correct) / r.images : 0.0;
    if (after_epoch) after_epoch(r);
  }
}

}  // namespace adascale::trainer
