#include "tools/adascale-run/evaluate.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <vector>

#include "base/statistics.h"

namespace adascale::run_cli {

Evaluation evaluate(Runtime& rt, const Dataset& ds) {
  check_labels(ds, rt.classes);
  const size_t image = rt.input.floats();
  // Without classes the logit count is not exposed; a generous buffer still lets the run time.
  std::vector<float> logits(rt.classes ? rt.classes : 1 << 16);
  const size_t capacity = logits.size();

  // One untimed run: XNNPACK's first call touches cold code and pages.
  rt.check(adascale_run(rt.get(), ds.pixels.data(), image, logits.data(), capacity), "run failed");
  Evaluation result;
  result.images = ds.count;
  result.labelled = ds.labelled();
  std::vector<double> ms(ds.count);
  result.predicted.reserve(ds.count);
  const auto loop_start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < ds.count; ++i) {
    const auto start = std::chrono::steady_clock::now();
    rt.check(adascale_run(rt.get(), ds.pixels.data() + i * image, image, logits.data(), capacity),
             "run failed");
    ms[i] =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const auto end =
        rt.classes ? logits.begin() + static_cast<std::ptrdiff_t>(rt.classes) : logits.end();
    const size_t best = static_cast<size_t>(std::max_element(logits.begin(), end) - logits.begin());
    result.predicted.push_back(static_cast<int>(best));
    if (ds.labelled()) result.correct += best == static_cast<size_t>(ds.labels[i]);
  }
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count();
  result.mean_ms = std::accumulate(ms.begin(), ms.end(), 0.0) / ds.count;
  result.median_ms = base::percentile(ms, 0.5);
  result.p90_ms = base::percentile(ms, 0.9);
  result.images_per_s = wall_s > 0 ? ds.count / wall_s : 0.0;
  return result;
}

}  // namespace adascale::run_cli
