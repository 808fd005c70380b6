// a one-epoch training config on the first images of Debian's Fashion-MNIST, for end-to-end
// tests; has_fashion_mnist() lets a test skip where the package is missing
#pragma once

#include <filesystem>
#include <string>

#include "datasets/dataset.h"
#include "trainer/config.h"

namespace adascale::testing {

inline bool has_fashion_mnist() {
  return std::filesystem::exists(std::string(data::default_fashion_mnist_root()) +
                                 "/train-images-idx3-ubyte.gz");
}

inline trainer::TrainConfig fashion_mnist_slice(int64_t train_images, int64_t test_images,
                                                const std::filesystem::path& out) {
  trainer::TrainConfig c;
  c.source = "test";
  c.data.limit_train = train_images;
  c.data.limit_test = test_images;
  c.data.workers = 1;
  c.model.stem_width = 8;
  c.model.depths = {1, 1};
  c.train.epochs = 1;
  c.train.lr = 0.05;
  c.train.threads = 1;  // ctest runs suites in parallel on 2 cores
  c.out_dir = out.string();
  return c;
}

}  // namespace adascale::testing
