// ProgressBar: one line per epoch on a terminal, redrawn in place at most ~8 times a second
// (loss, accuracy, images/s, ETA); when stderr is not a terminal it prints a plain line every ~25%
// so logs stay readable. A null `out` draws nothing (the ranks of a run but rank 0).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace adascale::trainer {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::FILE* out = stderr);
  // done: steps finished so far; items: images processed so far
  void update(int64_t done, int64_t items, double loss, double accuracy);
  void finish();
  double elapsed_seconds() const;

 private:
  void draw(int64_t done, int64_t items, double loss, double accuracy, bool final);
  std::string label_;
  int64_t total_;
  std::FILE* out_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_quarter_ = 0;
  int64_t done_ = 0, items_ = 0;
  double loss_ = 0, accuracy_ = 0;
};

std::string format_duration(double seconds);

}  // namespace adascale::trainer
