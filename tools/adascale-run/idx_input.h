// IDX input (MNIST style, unsigned bytes, plain or gzip): images [N,H,W] or [N,H,W,C] and labels
// [N]. What a header claims is checked before anything is allocated for the data: for a plain
// file against the file's size, which must match exactly; for a gzip file against the most its
// size can expand to, and then while the stream is read in chunks, which must end exactly at the
// claim.
#pragma once

#include <cstdint>
#include <string>

#include "tools/adascale-run/dataset.h"

namespace adascale::run_cli {

// The first `limit` images (all when limit <= 0) as NCHW floats in [0, 1], which must have the
// bundle's input shape; with labels unless `labels_path` is empty. Throws Failure.
Dataset load_idx(const std::string& images_path, const std::string& labels_path,
                 const ImageShape& shape, int64_t limit);

}  // namespace adascale::run_cli
