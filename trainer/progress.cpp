#include "trainer/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace adascale::trainer {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(s / 3600),
                  (long long)(s / 60 % 60), (long long)(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, std::FILE* out)
    : label_(std::move(label)),
      total_(std::max<int64_t>(1, total)),
      out_(out),
      tty_(out && isatty(fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(int64_t done, int64_t items, double loss, double accuracy) {
  done_ = done;
  items_ = items;
  loss_ = loss;
  accuracy_ = accuracy;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ > std::chrono::milliseconds(120)) {
      last_draw_ = now;
      draw(done, items, loss, accuracy, false);
    }
  } else {
    const int quarter = static_cast<int>(4 * done / total_);
    if (quarter > last_quarter_ && done < total_) {
      last_quarter_ = quarter;
      draw(done, items, loss, accuracy, false);
    }
  }
}

void ProgressBar::finish() { draw(done_, items_, loss_, accuracy_, true); }

void ProgressBar::draw(int64_t done, int64_t items, double loss, double accuracy, bool final) {
  if (!out_) return;
  const double elapsed = elapsed_seconds();
  const double rate = elapsed > 0 ? items / elapsed : 0.0;
  const double eta = done > 0 ? elapsed * (total_ - done) / done : NAN;
  const int width = 24;
  const int filled = static_cast<int>(width * done / total_);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  std::fprintf(out_, "%s%s [%s] %lld/%lld loss %.4f acc %5.2f%% %6.0f img/s %s %s%s",
               tty_ ? "\r" : "", label_.c_str(), bar.c_str(), (long long)done, (long long)total_,
               loss, 100.0 * accuracy, rate, final ? "took" : "eta",
               format_duration(final ? elapsed : eta).c_str(), (tty_ && !final) ? "" : "\n");
  std::fflush(out_);
}

}  // namespace adascale::trainer
