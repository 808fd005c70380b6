// IDX reader (MNIST / Fashion-MNIST), plain or gzipped.
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "datasets/dataset.h"
#include "datasets/detail.h"

namespace adascale::data {

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<uint8_t> read_gzip(const std::string& path) {
  // checked up front so a missing file is reported as missing, not as a zlib error
  if (!std::filesystem::exists(path)) throw DataError(path + ": cannot open file");
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) throw DataError(path + ": cannot open file");
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(1 << 20);
  std::string error;
  for (;;) {
    const int n = gzread(gz, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      error = gzerror(gz, &code);
      break;
    }
    if (n == 0) {
      // eof, or a stream that stopped early: gzerror tells which
      int code = 0;
      const char* msg = gzerror(gz, &code);
      if (code != Z_OK) error = msg;
      break;
    }
    // zlib reads non-gzip files transparently; a .gz path that is not gzip is a broken file
    if (out.empty() && gzdirect(gz)) {
      error = "not a gzip file";
      break;
    }
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  }
  if (out.empty() && error.empty() && gzdirect(gz)) error = "not a gzip file";
  gzclose(gz);
  if (!error.empty()) throw DataError(path + ": bad gzip data (" + error + ")");
  return out;
}

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  return ends_with(path, ".gz") ? read_gzip(path) : detail::read_file_bytes(path);
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

void check_header(const std::string& path, const std::vector<uint8_t>& bytes, uint32_t magic,
                  size_t header) {
  if (bytes.size() < 4) throw DataError(path + ": truncated IDX header");
  const uint32_t got = be32(bytes.data());
  if (got != magic)
    throw DataError(path + ": wrong IDX magic " + hex(got) + " (expected " + hex(magic) + ")");
  if (bytes.size() < header) throw DataError(path + ": truncated IDX header");
}

// the payload must be exactly `payload` bytes after the header
void check_size(const std::string& path, const std::vector<uint8_t>& bytes, size_t header,
                uint64_t payload) {
  const uint64_t expected = header + payload;
  if (bytes.size() < expected)
    throw DataError(path + ": truncated IDX data (" + std::to_string(bytes.size()) +
                    " bytes, expected " + std::to_string(expected) + ")");
  if (bytes.size() > expected)
    throw DataError(path + ": " + std::to_string(bytes.size() - expected) +
                    " unexpected bytes after the IDX data");
}

}  // namespace

DatasetPtr read_idx(const std::string& images_path, const std::string& labels_path,
                    std::vector<std::string> class_names) {
  std::vector<uint8_t> images = read_maybe_gzip(images_path);
  check_header(images_path, images, kImagesMagic, 16);
  const uint64_t n = be32(images.data() + 4);
  const uint64_t rows = be32(images.data() + 8);
  const uint64_t cols = be32(images.data() + 12);
  // bound the sizes first so n * rows * cols cannot overflow
  if (rows > (1u << 15) || cols > (1u << 15))
    throw DataError(images_path + ": implausible image size " + std::to_string(rows) + "x" +
                    std::to_string(cols));
  check_size(images_path, images, 16, n * rows * cols);
  if (rows == 0 || cols == 0)
    throw DataError(images_path + ": empty image size " + std::to_string(rows) + "x" +
                    std::to_string(cols));

  const std::vector<uint8_t> label_bytes = read_maybe_gzip(labels_path);
  check_header(labels_path, label_bytes, kLabelsMagic, 8);
  const uint64_t label_count = be32(label_bytes.data() + 4);
  check_size(labels_path, label_bytes, 8, label_count);
  if (label_count != n)
    throw DataError(labels_path + ": " + std::to_string(label_count) + " labels for " +
                    std::to_string(n) + " images in " + images_path);

  std::vector<int64_t> labels(label_bytes.begin() + 8, label_bytes.end());
  if (class_names.empty()) {
    const int64_t max_label = labels.empty() ? 0 : *std::max_element(labels.begin(), labels.end());
    class_names = detail::numbered_class_names(std::max<int64_t>(10, max_label + 1));
  }
  // drop the header in place: the pixels are the rest of the buffer
  images.erase(images.begin(), images.begin() + 16);
  return std::make_shared<InMemoryDataset>(
      ImageShape{1, static_cast<int64_t>(rows), static_cast<int64_t>(cols)}, std::move(images),
      std::move(labels), std::move(class_names), images_path);
}

}  // namespace adascale::data
