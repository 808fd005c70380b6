// The evaluation loop of adascale-run: one image at a time through the selected branch, each
// call timed, with top-1 accuracy when the images are labelled.
#pragma once

#include <cstddef>
#include <vector>

#include "tools/adascale-run/dataset.h"
#include "tools/adascale-run/runtime_handle.h"

namespace adascale::run_cli {

struct Evaluation {
  size_t images = 0;
  bool labelled = false;
  size_t correct = 0;                             // when labelled
  double median_ms = 0, p90_ms = 0, mean_ms = 0;  // per call (batch 1)
  double images_per_s = 0;                        // the whole loop
  std::vector<int> predicted;                     // top-1 class of every image, in order
};

// Runs the branch selected on `rt` over every image of `dataset` (labels checked against the
// bundle's classes first) after one untimed warm-up call. Throws Failure.
Evaluation evaluate(Runtime& rt, const Dataset& dataset);

}  // namespace adascale::run_cli
