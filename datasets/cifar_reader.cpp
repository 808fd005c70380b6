// CIFAR-10 / CIFAR-100 binary batches.
#include <algorithm>

#include "datasets/dataset.h"
#include "datasets/detail.h"

namespace adascale::data {

namespace {
constexpr int64_t kSide = 32;
constexpr int64_t kImageBytes = 3 * kSide * kSide;  // stored as R, G, B planes: already CHW
}  // namespace

DatasetPtr read_cifar_binary(const std::vector<std::string>& files, bool cifar100,
                             std::vector<std::string> class_names) {
  if (files.empty()) throw DataError("read_cifar_binary: no files given");
  const int64_t label_bytes = cifar100 ? 2 : 1;  // cifar-100: <coarse><fine>, we keep fine
  const int64_t record = label_bytes + kImageBytes;
  std::vector<uint8_t> pixels;
  std::vector<int64_t> labels;
  for (const std::string& file : files) {
    const std::vector<uint8_t> bytes = detail::read_file_bytes(file);
    const int64_t size = static_cast<int64_t>(bytes.size());
    if (size == 0) throw DataError(file + ": empty CIFAR file");
    if (size % record != 0)
      throw DataError(file + ": truncated CIFAR record (" + std::to_string(size) +
                      " bytes is not a multiple of the " + std::to_string(record) +
                      "-byte record)");
    const int64_t n = size / record;
    // bounded by the bytes really read; checked all the same, like every reader's sizes
    const uint64_t file_pixels =
        detail::checked_product(file, "records x record pixels",
                                {static_cast<uint64_t>(n), static_cast<uint64_t>(kImageBytes)});
    pixels.reserve(pixels.size() + static_cast<size_t>(file_pixels));
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* rec = bytes.data() + i * record;
      const int64_t label = rec[label_bytes - 1];
      const int64_t classes = cifar100 ? 100 : 10;
      if (label >= classes)
        throw DataError(file + ": record " + std::to_string(i) + " has label " +
                        std::to_string(label) + " (expected < " + std::to_string(classes) + ")");
      labels.push_back(label);
      pixels.insert(pixels.end(), rec + label_bytes, rec + record);
    }
  }
  if (class_names.empty()) class_names = detail::numbered_class_names(cifar100 ? 100 : 10);
  return std::make_shared<InMemoryDataset>(ImageShape{3, kSide, kSide}, std::move(pixels),
                                           std::move(labels), std::move(class_names),
                                           files.front());
}

}  // namespace adascale::data
