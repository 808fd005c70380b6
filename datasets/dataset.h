// datasets: labelled image sets for training and evaluation.
//
// Every reader loads a whole set into memory as uint8 pixels (NCHW) plus int64 labels: the sets we
// train on (Fashion-MNIST, CIFAR, small image folders, HDF5 arrays) fit easily, and in-memory
// access keeps batch assembly cheap and deterministic. Readers throw DataError with a one-line
// message that names the offending file; they never return a partially filled set.
//
//   auto train = adascale::data::open_dataset({"fashion-mnist", "", "train"});
//   auto split = adascale::data::split_indices(train->size(), 0.1, /*seed=*/1);
//   auto stats = adascale::data::channel_stats(*train, split.train);
//   BatchLoader loader(train, split.train, {.batch_size = 128, ...});
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace adascale::data {

// a reader or loader failure; what() is one line naming the file or setting at fault.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ImageShape {
  int64_t channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  // InMemoryDataset refuses a shape whose product (times the example count) overflows
  int64_t numel() const { return channels * height * width; }
};

// read-only labelled image set; pixels are uint8 in CHW order.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual ImageShape shape() const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  int64_t num_classes() const { return static_cast<int64_t>(class_names().size()); }
  // pointer to shape().numel() bytes of example i (CHW)
  virtual const uint8_t* pixels(int64_t i) const = 0;
  virtual int64_t label(int64_t i) const = 0;
};

// the dataset every reader returns: contiguous pixels and labels, validated on construction.
class InMemoryDataset : public Dataset {
 public:
  // throws DataError if sizes disagree or a label is outside [0, class_names.size())
  InMemoryDataset(ImageShape shape, std::vector<uint8_t> pixels, std::vector<int64_t> labels,
                  std::vector<std::string> class_names, std::string origin);
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  ImageShape shape() const override { return shape_; }
  const std::vector<std::string>& class_names() const override { return class_names_; }
  const uint8_t* pixels(int64_t i) const override;
  int64_t label(int64_t i) const override;
  const std::string& origin() const { return origin_; }
  // a new set holding the given examples (used for slices in tests and quick runs)
  std::shared_ptr<InMemoryDataset> subset(const std::vector<int64_t>& indices) const;

 private:
  ImageShape shape_;
  std::vector<uint8_t> pixels_;
  std::vector<int64_t> labels_;
  std::vector<std::string> class_names_;
  std::string origin_;
};

using DatasetPtr = std::shared_ptr<const InMemoryDataset>;

// the most classes a reader numbers itself ("0".."n-1") for a file that carries no class names;
// a larger label in such a file is refused as corrupt rather than allocating names for it
constexpr int64_t kMaxUnnamedClasses = 100000;

// ---- readers ---------------------------------------------------------------------------------
// IDX (MNIST / Fashion-MNIST): images idx3 (magic 0x803) and labels idx1 (magic 0x801); a path
// ending in .gz is decompressed on the fly. class_names may be empty (then "0".."9").
DatasetPtr read_idx(const std::string& images_path, const std::string& labels_path,
                    std::vector<std::string> class_names = {});
// CIFAR binary batches: CIFAR-10 records are <label><3072 pixels>; CIFAR-100 records are
// <coarse><fine><3072 pixels> and use the fine label. Several files are concatenated.
DatasetPtr read_cifar_binary(const std::vector<std::string>& files, bool cifar100,
                             std::vector<std::string> class_names = {});
// image folder: root/<class>/<image>, classes sorted by name; every image is decoded with OpenCV
// and resized to height x width (each at most 32768) with `channels` (1 = grayscale, 3 = RGB).
DatasetPtr read_image_folder(const std::string& root, int64_t height, int64_t width,
                             int64_t channels);
// HDF5 file with datasets `images` (uint8, N x H x W x C, or N x H x W) and `labels` (integer, N);
// optional string attribute `class_names` on `labels` (comma separated). H and W are at most
// 32768, C at most 64, and both arrays must be fully stored in the file (an extent larger than
// the stored data is refused before anything is allocated). Labels are in [0, class count); a
// file without `class_names` gets numbered classes, at most kMaxUnnamedClasses of them.
DatasetPtr read_hdf5(const std::string& path);
// writes a set in the layout read_hdf5 expects (atomically: temp file, then rename).
void write_hdf5(const Dataset& set, const std::string& path);

// ---- named sets --------------------------------------------------------------------------------
struct DatasetSpec {
  // fashion-mnist | mnist | cifar10 | cifar100 | folder | hdf5
  std::string format = "fashion-mnist";
  // empty: the default location of the format. folder: root/train and root/test, each with one
  // subfolder per class; the requested split's folder must exist, and when both exist their class
  // folders must have the same names. hdf5: a folder holding <split>.h5, or one file (any split).
  std::string root;
  std::string split = "train";  // train | test
  int64_t image_size = 0;       // folder only, required: resize to this square size
  int64_t channels = 0;         // folder only, required: 1 or 3
};
// where Debian's dataset-fashion-mnist package puts the files
const char* default_fashion_mnist_root();
DatasetPtr open_dataset(const DatasetSpec& spec);

// ---- splits and statistics -----------------------------------------------------------------
struct SplitIndices {
  std::vector<int64_t> train;
  std::vector<int64_t> validation;
};
// seeded shuffle, then the first round(n * validation_fraction) indices go to validation
SplitIndices split_indices(int64_t n, double validation_fraction, uint64_t seed);
std::vector<int64_t> all_indices(int64_t n);

struct ChannelStats {
  std::vector<float> mean;  // in [0,1] pixel units, one per channel
  std::vector<float> std;
};
ChannelStats channel_stats(const Dataset& set, const std::vector<int64_t>& indices);

}  // namespace adascale::data
