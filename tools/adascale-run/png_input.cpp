#include "tools/adascale-run/png_input.h"

#include <png.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>

#include "tools/adascale-run/failure.h"

namespace adascale::run_cli {
namespace {

namespace fs = std::filesystem;

// Bilinear resize of one CHW image, pixel centres aligned (as OpenCV INTER_LINEAR / PyTorch
// align_corners=false), so a fixture resized here matches what training saw.
std::vector<float> resize_bilinear(const std::vector<float>& src, int64_t c, int64_t sh, int64_t sw,
                                   int64_t dh, int64_t dw) {
  std::vector<float> dst(static_cast<size_t>(c * dh * dw));
  auto source = [](int64_t i, int64_t src_size, int64_t dst_size, int64_t* i0, int64_t* i1,
                   float* frac) {
    float x = (i + 0.5f) * static_cast<float>(src_size) / static_cast<float>(dst_size) - 0.5f;
    x = std::max(x, 0.0f);
    *i0 = std::min<int64_t>(static_cast<int64_t>(x), src_size - 1);
    *i1 = std::min<int64_t>(*i0 + 1, src_size - 1);
    *frac = x - static_cast<float>(*i0);
  };
  for (int64_t y = 0; y < dh; ++y) {
    int64_t y0, y1;
    float fy;
    source(y, sh, dh, &y0, &y1, &fy);
    for (int64_t x = 0; x < dw; ++x) {
      int64_t x0, x1;
      float fx;
      source(x, sw, dw, &x0, &x1, &fx);
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* p = src.data() + ch * sh * sw;
        const float top = p[y0 * sw + x0] * (1 - fx) + p[y0 * sw + x1] * fx;
        const float bottom = p[y1 * sw + x0] * (1 - fx) + p[y1 * sw + x1] * fx;
        dst[(ch * dh + y) * dw + x] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return dst;
}

constexpr int64_t kMaxPngSide = 16384;
constexpr int64_t kMaxPngPixels = int64_t{1} << 25;  // 8K UHD fits; each image is resized anyway

// Decodes a PNG into `channels` channels (libpng converts gray <-> RGB and drops alpha), CHW.
std::vector<float> read_png(const std::string& path, const ImageShape& shape) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  // The size checked below is that of the file decoded, not of whatever the path names later.
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                             &std::fclose);
  if (!file) throw Failure("cannot open PNG '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(::fileno(file.get()), &st) != 0 || !S_ISREG(st.st_mode))
    throw Failure("PNG '" + path + "' is not a regular file");
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (!png_image_begin_read_from_stdio(&image, file.get()))
    throw Failure("cannot decode PNG '" + path + "': " + image.message);
  switch (shape.channels) {
    case 1:
      image.format = PNG_FORMAT_GRAY;
      break;
    case 3:
      image.format = PNG_FORMAT_RGB;
      break;
    case 4:
      image.format = PNG_FORMAT_RGBA;
      break;
    default:
      png_image_free(&image);
      throw Failure("the bundle expects " + std::to_string(shape.channels) +
                    " channels; PNG input supports 1, 3 or 4");
  }
  const int64_t c = shape.channels, h = image.height, w = image.width;
  // Checked before the pixels are allocated: the limits, and what the file's size can hold (a
  // row of a 1-bit image packs 8 pixels a byte before deflate, which expands at most 1032 times).
  const std::string claim =
      "header fields width = " + std::to_string(w) + ", height = " + std::to_string(h);
  if (h < 1 || w < 1 || h > kMaxPngSide || w > kMaxPngSide || h * w > kMaxPngPixels) {
    png_image_free(&image);
    throw Failure("PNG '" + path + "': " + claim + " are outside the limits (1 to " +
                  std::to_string(kMaxPngSide) + " a side, " + std::to_string(kMaxPngPixels) +
                  " pixels)");
  }
  if (static_cast<uint64_t>(h * w) > file_bytes * 8 * kMaxDeflateRatio) {
    png_image_free(&image);
    throw Failure("PNG '" + path + "': " + claim + " claim more pixels than a file of " +
                  std::to_string(file_bytes) + " bytes can hold");
  }
  std::vector<uint8_t> hwc(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, hwc.data(), 0, nullptr))
    throw Failure("cannot decode PNG '" + path + "': " + image.message);
  std::vector<float> chw(static_cast<size_t>(c * h * w));
  for (int64_t p = 0; p < h * w; ++p)
    for (int64_t ch = 0; ch < c; ++ch) chw[ch * h * w + p] = hwc[p * c + ch] / 255.0f;
  if (h == shape.height && w == shape.width) return chw;
  return resize_bilinear(chw, c, h, w, shape.height, shape.width);
}

bool is_png(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return ext == ".png";
}

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    entries.push_back(it->path());
  if (ec) throw Failure("cannot read directory '" + dir.string() + "': " + ec.message());
  std::sort(entries.begin(), entries.end());
  return entries;
}

}  // namespace

Dataset load_png_folder(const std::string& folder, const ImageShape& shape,
                        const std::vector<std::string>& classes, int64_t limit) {
  const fs::path root(folder);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw Failure("'" + folder + "' is not a directory");
  // (path, label) in a stable order: loose files first, then class folders by name.
  std::vector<std::pair<fs::path, int64_t>> files;
  std::vector<std::pair<fs::path, int64_t>> labelled;
  for (const fs::path& entry : sorted_entries(root)) {
    if (fs::is_directory(entry, ec)) {
      const std::string name = entry.filename().string();
      auto it = std::find(classes.begin(), classes.end(), name);
      if (it == classes.end())
        throw Failure("folder '" + name + "' is not a class of the bundle" +
                      (classes.empty() ? std::string(" (the catalog names no classes)")
                                       : " (classes: " + classes.front() + ", ...)"));
      for (const fs::path& file : sorted_entries(entry))
        if (is_png(file)) labelled.emplace_back(file, it - classes.begin());
    } else if (is_png(entry)) {
      files.emplace_back(entry, -1);
    }
  }
  if (!files.empty() && !labelled.empty())
    throw Failure("'" + folder + "' mixes loose PNG files with class folders");
  if (files.empty()) files = std::move(labelled);
  if (files.empty()) throw Failure("no PNG files under '" + folder + "'");
  if (limit > 0 && files.size() > static_cast<size_t>(limit)) files.resize(limit);
  Dataset ds;
  ds.count = files.size();
  const size_t image = static_cast<size_t>(shape.channels * shape.height * shape.width);
  ds.pixels.reserve(ds.count * image);
  for (const auto& file : files) {
    const std::vector<float> chw = read_png(file.first.string(), shape);
    ds.pixels.insert(ds.pixels.end(), chw.begin(), chw.end());
  }
  if (files.front().second >= 0)
    for (const auto& file : files) ds.labels.push_back(file.second);
  return ds;
}

}  // namespace adascale::run_cli
