// image folders: root/<class>/<image>, decoded with OpenCV.
#include <algorithm>
#include <filesystem>
#include <new>
#ifdef ADASCALE_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif
#include <system_error>

#include "datasets/dataset.h"
#include "datasets/detail.h"

namespace fs = std::filesystem;

namespace adascale::data {

namespace {

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

// sorted so the class ids and example order do not depend on the file system
std::vector<fs::path> sorted_entries(const fs::path& dir, bool directories) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (hidden(it->path())) continue;
    const bool is_dir = it->is_directory(ec);
    if (directories ? is_dir : (!is_dir && it->is_regular_file(ec))) out.push_back(it->path());
  }
  if (ec) throw DataError(dir.string() + ": cannot list folder (" + ec.message() + ")");
  std::sort(out.begin(), out.end());
  return out;
}

// decoded, resized, RGB (or gray) image appended to `out` in CHW order
#ifndef ADASCALE_WITH_OPENCV
void append_image(const fs::path& file, int64_t, int64_t, int64_t, std::vector<uint8_t>&) {
  // a build for a machine without OpenCV's development files (e.g. a pip LibTorch with CUDA)
  throw DataError(file.string() +
                  ": decoding images needs OpenCV, which this build was configured without "
                  "(install OpenCV's development files and reconfigure)");
}
#else
void append_image(const fs::path& file, int64_t height, int64_t width, int64_t channels,
                  std::vector<uint8_t>& out) {
  cv::Mat img;
  try {
    img = cv::imread(file.string(), channels == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
  } catch (const cv::Exception&) {
    img.release();  // reported below like any other undecodable file
  }
  if (img.empty()) throw DataError(file.string() + ": cannot read image");
  if (img.rows != height || img.cols != width) {
    // area averaging when shrinking avoids aliasing; linear when enlarging
    const bool shrink = img.rows > height || img.cols > width;
    cv::Mat resized;
    cv::resize(img, resized, cv::Size(static_cast<int>(width), static_cast<int>(height)), 0, 0,
               shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
    img = resized;
  }
  if (channels == 3) cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
  if (!img.isContinuous()) img = img.clone();
  const size_t plane = static_cast<size_t>(height * width);
  const size_t base = out.size();
  out.resize(base + plane * static_cast<size_t>(channels));
  const uint8_t* src = img.ptr<uint8_t>();
  for (size_t k = 0; k < plane; ++k)
    for (int64_t c = 0; c < channels; ++c)
      out[base + static_cast<size_t>(c) * plane + k] = src[k * static_cast<size_t>(channels) + c];
}
#endif

}  // namespace

namespace detail {

std::vector<std::string> class_folder_names(const std::string& dir) {
  std::vector<std::string> names;
  for (const fs::path& p : sorted_entries(dir, true)) names.push_back(p.filename().string());
  return names;
}

}  // namespace detail

DatasetPtr read_image_folder(const std::string& root, int64_t height, int64_t width,
                             int64_t channels) {
  if (channels != 1 && channels != 3)
    throw DataError(root + ": image channels must be 1 or 3, got " + std::to_string(channels));
  if (height <= 0 || width <= 0)
    throw DataError(root + ": invalid image size " + std::to_string(height) + "x" +
                    std::to_string(width));
  // bounded like every reader's image side (and so it fits OpenCV's int sizes)
  if (static_cast<uint64_t>(height) > detail::kMaxImageSide ||
      static_cast<uint64_t>(width) > detail::kMaxImageSide)
    throw DataError(root + ": implausible image size " + std::to_string(height) + "x" +
                    std::to_string(width) + " (limit " + std::to_string(detail::kMaxImageSide) +
                    ")");
  if (!fs::is_directory(root)) throw DataError(root + ": not a folder");
  const std::vector<fs::path> class_dirs = sorted_entries(root, true);
  if (class_dirs.empty()) throw DataError(root + ": no class folders");

  // list everything first: the pixel buffer is sized (and checked) once, before any decoding
  std::vector<std::string> class_names;
  std::vector<std::vector<fs::path>> class_files;
  uint64_t count = 0;
  for (const fs::path& dir : class_dirs) {
    class_names.push_back(dir.filename().string());
    class_files.push_back(sorted_entries(dir, false));
    // a class with no examples is almost always a mistake in the folder layout
    if (class_files.back().empty()) throw DataError(dir.string() + ": class folder has no images");
    count += class_files.back().size();
  }
  const uint64_t total =
      detail::checked_product(root, "images x channels x height x width",
                              {count, static_cast<uint64_t>(channels),
                               static_cast<uint64_t>(height), static_cast<uint64_t>(width)});

  std::vector<uint8_t> pixels;
  std::vector<int64_t> labels;
  try {
    pixels.reserve(static_cast<size_t>(total));
    labels.reserve(static_cast<size_t>(count));
  } catch (const std::exception&) {  // bad_alloc, or length_error beyond max_size()
    throw DataError(root + ": " + std::to_string(count) + " images of " + std::to_string(channels) +
                    "x" + std::to_string(height) + "x" + std::to_string(width) +
                    " do not fit in memory");
  }
  for (size_t c = 0; c < class_files.size(); ++c) {
    for (const fs::path& file : class_files[c]) {
      append_image(file, height, width, channels, pixels);
      labels.push_back(static_cast<int64_t>(c));
    }
  }
  return std::make_shared<InMemoryDataset>(ImageShape{channels, height, width}, std::move(pixels),
                                           std::move(labels), std::move(class_names), root);
}

}  // namespace adascale::data
