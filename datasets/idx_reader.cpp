// IDX reader (MNIST / Fashion-MNIST), plain or gzipped.
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>

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

// one IDX file, plain or gzipped, read front to back: the header first, so that what it claims
// can be checked against the file before a buffer of that size is allocated
class IdxStream {
 public:
  explicit IdxStream(const std::string& path) : path_(path), gzip_(ends_with(path, ".gz")) {
    // checked up front so a missing file is reported as missing, not as a zlib error
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw DataError(path + ": cannot open file");
    if (!std::filesystem::is_regular_file(path, ec)) throw DataError(path + ": not a regular file");
    if (gzip_) {
      gz_ = gzopen(path.c_str(), "rb");
      if (!gz_) throw DataError(path + ": cannot open file");
    } else {
      size_ = std::filesystem::file_size(path, ec);
      if (ec) throw DataError(path + ": cannot determine file size (" + ec.message() + ")");
      in_.open(path, std::ios::binary);
      if (!in_) throw DataError(path + ": cannot open file");
    }
  }
  ~IdxStream() {
    if (gz_) gzclose(gz_);
  }
  IdxStream(const IdxStream&) = delete;
  IdxStream& operator=(const IdxStream&) = delete;

  // bytes left after what was read so far; unknown (nullopt) for gzip until the end is reached
  std::optional<uint64_t> remaining() const {
    if (gzip_) return std::nullopt;
    return size_ - consumed_;
  }

  // up to n bytes appended to out; fewer only at the end of the data. The buffer grows with what
  // the file really yields, never with what a header claims.
  void read_into(std::vector<uint8_t>& out, uint64_t n) {
    while (n > 0) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(n, kChunk));
      const size_t base = out.size();
      out.resize(base + want);
      const size_t got = read_some(out.data() + base, want);
      out.resize(base + got);
      n -= got;
      if (got < want) return;
    }
  }

  // the number of bytes left in the stream, read and dropped (bounded memory)
  uint64_t skip_rest() {
    std::vector<uint8_t> chunk(kChunk);
    uint64_t total = 0;
    for (;;) {
      const size_t got = read_some(chunk.data(), chunk.size());
      total += got;
      if (got < chunk.size()) return total;
    }
  }

 private:
  static constexpr size_t kChunk = size_t{1} << 20;

  // fills buf with up to n bytes; fewer only at the end of the data (a broken gzip stream throws)
  size_t read_some(uint8_t* buf, size_t n) {
    size_t got = 0;
    if (!gzip_) {
      in_.read(reinterpret_cast<char*>(buf), static_cast<std::streamsize>(n));
      got = static_cast<size_t>(in_.gcount());
      if (got < n && !in_.eof()) throw DataError(path_ + ": read error");
      consumed_ += got;
      return got;
    }
    while (got < n) {
      const int r = gzread(gz_, buf + got, static_cast<unsigned>(n - got));
      // zlib reads non-gzip files transparently; a .gz path that is not gzip is a broken file
      if (!checked_direct_) {
        checked_direct_ = true;
        if (gzdirect(gz_)) throw DataError(path_ + ": bad gzip data (not a gzip file)");
      }
      if (r < 0) {
        int code = 0;
        throw DataError(path_ + ": bad gzip data (" + gzerror(gz_, &code) + ")");
      }
      if (r == 0) {
        // eof, or a stream that stopped early: gzerror tells which
        int code = 0;
        const char* msg = gzerror(gz_, &code);
        if (code != Z_OK) throw DataError(path_ + ": bad gzip data (" + msg + ")");
        break;
      }
      got += static_cast<size_t>(r);
    }
    consumed_ += got;
    return got;
  }

  std::string path_;
  bool gzip_;
  gzFile gz_ = nullptr;
  bool checked_direct_ = false;
  std::ifstream in_;
  uint64_t size_ = 0;
  uint64_t consumed_ = 0;
};

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// the header's `size` bytes, magic checked
std::vector<uint8_t> read_header(const std::string& path, IdxStream& in, uint32_t magic,
                                 size_t size) {
  std::vector<uint8_t> header;
  in.read_into(header, size);
  if (header.size() < 4) throw DataError(path + ": truncated IDX header");
  const uint32_t got = be32(header.data());
  if (got != magic)
    throw DataError(path + ": wrong IDX magic " + hex(got) + " (expected " + hex(magic) + ")");
  if (header.size() < size) throw DataError(path + ": truncated IDX header");
  return header;
}

// exactly `payload` bytes after a `header_size`-byte header, as `claim` describes them; a plain
// file's size is checked before the buffer is allocated, a gzip stream is read no further than
// the claim (then counted to the end for the message)
std::vector<uint8_t> read_payload(const std::string& path, IdxStream& in, size_t header_size,
                                  uint64_t payload, const std::string& claim) {
  const auto truncated = [&](uint64_t have) {
    return DataError(path + ": truncated: header claims " + claim + " = " +
                     std::to_string(payload) + " bytes, file has " + std::to_string(have) +
                     " after the " + std::to_string(header_size) + "-byte header");
  };
  const auto trailing = [&](uint64_t extra) {
    return DataError(path + ": " + std::to_string(extra) +
                     " unexpected bytes after the IDX data (" + claim + " = " +
                     std::to_string(payload) + " bytes)");
  };
  if (const auto left = in.remaining()) {
    if (*left < payload) throw truncated(*left);
    if (*left > payload) throw trailing(*left - payload);
  }
  std::vector<uint8_t> bytes;
  if (in.remaining()) bytes.reserve(static_cast<size_t>(payload));  // the file holds that much
  in.read_into(bytes, payload);
  if (bytes.size() < payload) throw truncated(bytes.size());
  if (!in.remaining())
    if (const uint64_t extra = in.skip_rest()) throw trailing(extra);
  return bytes;
}

}  // namespace

DatasetPtr read_idx(const std::string& images_path, const std::string& labels_path,
                    std::vector<std::string> class_names) {
  IdxStream images_in(images_path);
  const std::vector<uint8_t> header = read_header(images_path, images_in, kImagesMagic, 16);
  const uint64_t n = be32(header.data() + 4);
  const uint64_t rows = be32(header.data() + 8);
  const uint64_t cols = be32(header.data() + 12);
  if (rows > detail::kMaxImageSide || cols > detail::kMaxImageSide)
    throw DataError(images_path + ": implausible image size " + std::to_string(rows) + "x" +
                    std::to_string(cols) + " (limit " + std::to_string(detail::kMaxImageSide) +
                    ")");
  if (rows == 0 || cols == 0)
    throw DataError(images_path + ": empty image size " + std::to_string(rows) + "x" +
                    std::to_string(cols));
  const uint64_t payload =
      detail::checked_product(images_path, "header images x rows x cols", {n, rows, cols});

  std::vector<uint8_t> pixels = read_payload(
      images_path, images_in, 16, payload,
      std::to_string(n) + " images of " + std::to_string(rows) + "x" + std::to_string(cols));

  IdxStream labels_in(labels_path);
  const std::vector<uint8_t> label_header = read_header(labels_path, labels_in, kLabelsMagic, 8);
  const uint64_t label_count = be32(label_header.data() + 4);
  if (label_count != n)
    throw DataError(labels_path + ": " + std::to_string(label_count) + " labels for " +
                    std::to_string(n) + " images in " + images_path);
  const std::vector<uint8_t> label_bytes =
      read_payload(labels_path, labels_in, 8, label_count, std::to_string(label_count) + " labels");

  std::vector<int64_t> labels(label_bytes.begin(), label_bytes.end());
  if (class_names.empty()) {
    // one byte per label: at most 256 numbered classes
    const int64_t max_label = labels.empty() ? 0 : *std::max_element(labels.begin(), labels.end());
    class_names = detail::numbered_class_names(std::max<int64_t>(10, max_label + 1));
  }
  return std::make_shared<InMemoryDataset>(
      ImageShape{1, static_cast<int64_t>(rows), static_cast<int64_t>(cols)}, std::move(pixels),
      std::move(labels), std::move(class_names), images_path);
}

}  // namespace adascale::data
