// InMemoryDataset, named sets (open_dataset), splits and channel statistics.
#include "datasets/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <random>
#include <system_error>

#include "datasets/detail.h"

namespace fs = std::filesystem;

namespace adascale::data {

namespace detail {

std::string join_dims(const std::vector<uint64_t>& dims) {
  std::string out;
  for (uint64_t d : dims) out += (out.empty() ? "" : " x ") + std::to_string(d);
  return out;
}

uint64_t checked_product(const std::string& file, const std::string& field,
                         const std::vector<uint64_t>& dims) {
  uint64_t product = 1;
  for (uint64_t d : dims)
    if (__builtin_mul_overflow(product, d, &product) || product > static_cast<uint64_t>(INT64_MAX))
      throw DataError(file + ": " + field + " " + join_dims(dims) +
                      " overflows the 64-bit size range");
  return product;
}

std::vector<std::string> numbered_class_names(int64_t n) {
  if (n < 0 || n > kMaxUnnamedClasses)
    throw DataError("numbered_class_names: " + std::to_string(n) + " classes (limit " +
                    std::to_string(kMaxUnnamedClasses) + ")");
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) names.push_back(std::to_string(i));
  return names;
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw DataError(path + ": cannot open file");
  // a device or fifo has no size to check before reading; a folder is not a data file
  if (!fs::is_regular_file(path, ec)) throw DataError(path + ": not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) throw DataError(path + ": cannot determine file size (" + ec.message() + ")");
  if (size > static_cast<uintmax_t>(PTRDIFF_MAX))
    throw DataError(path + ": file of " + std::to_string(size) + " bytes is too large");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open file");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0 &&
      !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    throw DataError(path + ": read error (file shorter than its " + std::to_string(size) +
                    " bytes)");
  return bytes;
}

}  // namespace detail

// ---- InMemoryDataset -----------------------------------------------------------------------

InMemoryDataset::InMemoryDataset(ImageShape shape, std::vector<uint8_t> pixels,
                                 std::vector<int64_t> labels, std::vector<std::string> class_names,
                                 std::string origin)
    : shape_(shape),
      pixels_(std::move(pixels)),
      labels_(std::move(labels)),
      class_names_(std::move(class_names)),
      origin_(std::move(origin)) {
  if (shape_.channels <= 0 || shape_.height <= 0 || shape_.width <= 0)
    throw DataError(origin_ + ": invalid image shape " + std::to_string(shape_.channels) + "x" +
                    std::to_string(shape_.height) + "x" + std::to_string(shape_.width));
  // checked, so numel() and every offset into pixels_ stay in range
  const uint64_t expected = detail::checked_product(
      origin_, "image shape x examples",
      {static_cast<uint64_t>(shape_.channels), static_cast<uint64_t>(shape_.height),
       static_cast<uint64_t>(shape_.width), static_cast<uint64_t>(labels_.size())});
  if (pixels_.size() != expected)
    throw DataError(origin_ + ": " + std::to_string(pixels_.size()) + " pixel bytes for " +
                    std::to_string(labels_.size()) + " images of " +
                    std::to_string(shape_.numel()) + " (expected " + std::to_string(expected) +
                    ")");
  if (class_names_.empty()) throw DataError(origin_ + ": no class names");
  const int64_t classes = static_cast<int64_t>(class_names_.size());
  for (size_t i = 0; i < labels_.size(); ++i)
    if (labels_[i] < 0 || labels_[i] >= classes)
      throw DataError(origin_ + ": label " + std::to_string(labels_[i]) + " of example " +
                      std::to_string(i) + " is outside [0, " + std::to_string(classes) + ")");
}

const uint8_t* InMemoryDataset::pixels(int64_t i) const {
  if (i < 0 || i >= size())
    throw DataError(origin_ + ": example " + std::to_string(i) + " out of range");
  return pixels_.data() + static_cast<size_t>(i) * static_cast<size_t>(shape_.numel());
}

int64_t InMemoryDataset::label(int64_t i) const {
  if (i < 0 || i >= size())
    throw DataError(origin_ + ": example " + std::to_string(i) + " out of range");
  return labels_[static_cast<size_t>(i)];
}

std::shared_ptr<InMemoryDataset> InMemoryDataset::subset(
    const std::vector<int64_t>& indices) const {
  const size_t numel = static_cast<size_t>(shape_.numel());
  std::vector<uint8_t> pixels(indices.size() * numel);
  std::vector<int64_t> labels(indices.size());
  for (size_t k = 0; k < indices.size(); ++k) {
    const uint8_t* src = this->pixels(indices[k]);  // range-checked
    std::copy(src, src + numel, pixels.begin() + static_cast<std::ptrdiff_t>(k * numel));
    labels[k] = labels_[static_cast<size_t>(indices[k])];
  }
  return std::make_shared<InMemoryDataset>(shape_, std::move(pixels), std::move(labels),
                                           class_names_, origin_);
}

// ---- named sets ------------------------------------------------------------------------------

const char* default_fashion_mnist_root() { return "/usr/share/datasets/fashion-mnist"; }

namespace {

const std::vector<std::string>& fashion_mnist_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

const std::vector<std::string>& cifar10_names() {
  static const std::vector<std::string> names = {
      "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return names;
}

const std::vector<std::string>& cifar100_names() {
  static const std::vector<std::string> names = {
      "apple",       "aquarium_fish", "baby",      "bear",       "beaver",       "bed",
      "bee",         "beetle",        "bicycle",   "bottle",     "bowl",         "boy",
      "bridge",      "bus",           "butterfly", "camel",      "can",          "castle",
      "caterpillar", "cattle",        "chair",     "chimpanzee", "clock",        "cloud",
      "cockroach",   "couch",         "crab",      "crocodile",  "cup",          "dinosaur",
      "dolphin",     "elephant",      "flatfish",  "forest",     "fox",          "girl",
      "hamster",     "house",         "kangaroo",  "keyboard",   "lamp",         "lawn_mower",
      "leopard",     "lion",          "lizard",    "lobster",    "man",          "maple_tree",
      "motorcycle",  "mountain",      "mouse",     "mushroom",   "oak_tree",     "orange",
      "orchid",      "otter",         "palm_tree", "pear",       "pickup_truck", "pine_tree",
      "plain",       "plate",         "poppy",     "porcupine",  "possum",       "rabbit",
      "raccoon",     "ray",           "road",      "rocket",     "rose",         "sea",
      "seal",        "shark",         "shrew",     "skunk",      "skyscraper",   "snail",
      "snake",       "spider",        "squirrel",  "streetcar",  "sunflower",    "sweet_pepper",
      "table",       "tank",          "telephone", "television", "tiger",        "tractor",
      "train",       "trout",         "tulip",     "turtle",     "wardrobe",     "whale",
      "willow_tree", "wolf",          "woman",     "worm"};
  return names;
}

// one name per non-empty line (the label files shipped with the CIFAR binary archives);
// falls back when the file is absent or does not hold the expected count.
std::vector<std::string> names_file_or(const fs::path& file,
                                       const std::vector<std::string>& fallback) {
  std::ifstream in(file);
  if (!in) return fallback;
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names.size() == fallback.size() ? names : fallback;
}

// prefers the gzipped file, accepts an already decompressed one
std::string idx_file(const fs::path& root, const std::string& stem) {
  const fs::path gz = root / (stem + ".gz");
  if (fs::exists(gz)) return gz.string();
  const fs::path plain = root / stem;
  if (fs::exists(plain)) return plain.string();
  return gz.string();  // the reader reports it missing
}

DatasetPtr open_idx(const fs::path& root, const std::string& split,
                    std::vector<std::string> names) {
  const std::string prefix = split == "train" ? "train" : "t10k";
  return read_idx(idx_file(root, prefix + "-images-idx3-ubyte"),
                  idx_file(root, prefix + "-labels-idx1-ubyte"), std::move(names));
}

// the archives unpack into a subfolder; accept either that folder or its parent as root
fs::path descend_if_present(const fs::path& root, const char* sub) {
  return fs::is_directory(root / sub) ? root / sub : root;
}

std::string require_root(const DatasetSpec& spec) {
  if (spec.root.empty())
    throw DataError("dataset format '" + spec.format + "' needs a root folder (no default)");
  return spec.root;
}

// the two splits of a set must name the same classes in the same order (class ids are indices);
// throws DataError naming the root and the first class that differs
void same_classes(const std::string& root, const std::string& a,
                  const std::vector<std::string>& a_names, const std::string& b,
                  const std::vector<std::string>& b_names, const std::string& what) {
  for (const std::string& name : a_names)
    if (std::find(b_names.begin(), b_names.end(), name) == b_names.end())
      throw DataError(root + ": " + what + " '" + name + "' is in " + a + " but not in " + b +
                      " (both splits must have the same classes)");
  for (const std::string& name : b_names)
    if (std::find(a_names.begin(), a_names.end(), name) == a_names.end())
      throw DataError(root + ": " + what + " '" + name + "' is in " + b + " but not in " + a +
                      " (both splits must have the same classes)");
  for (size_t i = 0; i < a_names.size() && i < b_names.size(); ++i)
    if (a_names[i] != b_names[i])
      throw DataError(root + ": " + what + " '" + a_names[i] + "' is class " + std::to_string(i) +
                      " in " + a + " but '" + b_names[i] + "' is in " + b);
  if (a_names.size() != b_names.size())  // the same names, one of them listed twice
    throw DataError(root + ": " + a + " has " + std::to_string(a_names.size()) + " classes, " + b +
                    " has " + std::to_string(b_names.size()));
}

}  // namespace

DatasetPtr open_dataset(const DatasetSpec& spec) {
  if (spec.split != "train" && spec.split != "test")
    throw DataError("dataset split '" + spec.split + "' is not train or test");
  const std::string& f = spec.format;
  if (f == "fashion-mnist") {
    const fs::path root = spec.root.empty() ? default_fashion_mnist_root() : spec.root;
    return open_idx(root, spec.split, fashion_mnist_names());
  }
  if (f == "mnist") return open_idx(require_root(spec), spec.split, {});
  if (f == "cifar10") {
    const fs::path root = descend_if_present(require_root(spec), "cifar-10-batches-bin");
    std::vector<std::string> files;
    if (spec.split == "train") {
      for (int i = 1; i <= 5; ++i)
        files.push_back((root / ("data_batch_" + std::to_string(i) + ".bin")).string());
    } else {
      files.push_back((root / "test_batch.bin").string());
    }
    return read_cifar_binary(files, false,
                             names_file_or(root / "batches.meta.txt", cifar10_names()));
  }
  if (f == "cifar100") {
    const fs::path root = descend_if_present(require_root(spec), "cifar-100-binary");
    return read_cifar_binary({(root / (spec.split + ".bin")).string()}, true,
                             names_file_or(root / "fine_label_names.txt", cifar100_names()));
  }
  if (f == "folder") {
    const fs::path root = require_root(spec);
    // no fallback to root itself: that would train and test on the same images
    const fs::path dir = root / spec.split;
    if (!fs::is_directory(dir))
      throw DataError(root.string() + ": no '" + spec.split +
                      "' folder (data.format = folder expects root/train and root/test, one "
                      "subfolder per class)");
    const std::string other = spec.split == "train" ? "test" : "train";
    if (fs::is_directory(root / other))
      same_classes(root.string(), spec.split, detail::class_folder_names(dir.string()), other,
                   detail::class_folder_names((root / other).string()), "class folder");
    // no silent default size: a folder of 224x224 photos would otherwise train at 32x32
    if (spec.image_size < 1 || (spec.channels != 1 && spec.channels != 3))
      throw DataError(root.string() +
                      ": data.format = folder needs image_size >= 1 and channels "
                      "1 or 3, got " +
                      std::to_string(spec.image_size) + " and " + std::to_string(spec.channels));
    return read_image_folder(dir.string(), spec.image_size, spec.image_size, spec.channels);
  }
  if (f == "hdf5") {
    const fs::path root = require_root(spec);
    if (!fs::is_directory(root)) return read_hdf5(root.string());  // one file for any split
    const fs::path file = root / (spec.split + ".h5");
    // class ids must mean the same in both files; a file without names is numbered
    const std::string other = spec.split == "train" ? "test" : "train";
    const std::vector<std::string> mine = detail::hdf5_class_names(file.string());
    const std::vector<std::string> theirs =
        detail::hdf5_class_names((root / (other + ".h5")).string());
    if (!mine.empty() && !theirs.empty())
      same_classes(root.string(), spec.split + ".h5", mine, other + ".h5", theirs, "class");
    return read_hdf5(file.string());
  }
  throw DataError("unknown dataset format '" + f +
                  "' (expected fashion-mnist, mnist, cifar10, cifar100, folder or hdf5)");
}

// ---- splits and statistics -------------------------------------------------------------------

std::vector<int64_t> all_indices(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

SplitIndices split_indices(int64_t n, double validation_fraction, uint64_t seed) {
  if (n < 0) throw DataError("split_indices: negative size " + std::to_string(n));
  if (!(validation_fraction >= 0.0 && validation_fraction <= 1.0))
    throw DataError("split_indices: validation fraction " + std::to_string(validation_fraction) +
                    " is outside [0, 1]");
  std::vector<int64_t> order = all_indices(n);
  std::mt19937_64 rng(seed);
  detail::shuffle(order, rng);
  const auto k =
      static_cast<std::ptrdiff_t>(std::llround(static_cast<double>(n) * validation_fraction));
  SplitIndices s;
  s.validation.assign(order.begin(), order.begin() + k);
  s.train.assign(order.begin() + k, order.end());
  // sorted so evaluation walks the file in order; the loader shuffles training itself
  std::sort(s.validation.begin(), s.validation.end());
  std::sort(s.train.begin(), s.train.end());
  return s;
}

ChannelStats channel_stats(const Dataset& set, const std::vector<int64_t>& indices) {
  if (indices.empty()) throw DataError("channel_stats: no examples selected");
  const ImageShape shape = set.shape();
  const int64_t plane = shape.height * shape.width;
  // integer sums are exact; one image's plane fits easily in 64 bits
  std::vector<uint64_t> sum(static_cast<size_t>(shape.channels), 0);
  std::vector<uint64_t> sum_sq(static_cast<size_t>(shape.channels), 0);
  for (int64_t i : indices) {
    const uint8_t* p = set.pixels(i);
    for (int64_t c = 0; c < shape.channels; ++c) {
      uint64_t s = 0, s2 = 0;
      for (int64_t k = 0; k < plane; ++k) {
        const uint64_t v = p[c * plane + k];
        s += v;
        s2 += v * v;
      }
      sum[static_cast<size_t>(c)] += s;
      sum_sq[static_cast<size_t>(c)] += s2;
    }
  }
  ChannelStats stats;
  const double count = static_cast<double>(indices.size()) * static_cast<double>(plane);
  for (int64_t c = 0; c < shape.channels; ++c) {
    const double mean = static_cast<double>(sum[static_cast<size_t>(c)]) / count / 255.0;
    const double mean_sq =
        static_cast<double>(sum_sq[static_cast<size_t>(c)]) / count / (255.0 * 255.0);
    stats.mean.push_back(static_cast<float>(mean));
    stats.std.push_back(static_cast<float>(std::sqrt(std::max(0.0, mean_sq - mean * mean))));
  }
  return stats;
}

}  // namespace adascale::data
