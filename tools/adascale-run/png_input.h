// PNG folder input: one sub-folder per class (named as in the catalog) holding PNG files, or PNG
// files directly in the folder (unlabelled). Each image is converted to the bundle's channel
// count (libpng converts gray <-> RGB and drops alpha) and resized (bilinear) to its input size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/adascale-run/dataset.h"

namespace adascale::run_cli {

// Loose files first, then class folders by name, each sorted; the first `limit` images (all when
// limit <= 0). Throws Failure.
Dataset load_png_folder(const std::string& folder, const ImageShape& shape,
                        const std::vector<std::string>& classes, int64_t limit);

}  // namespace adascale::run_cli
