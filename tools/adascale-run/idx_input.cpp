#include "tools/adascale-run/idx_input.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "tools/adascale-run/failure.h"

namespace adascale::run_cli {
namespace {

constexpr uint64_t kMaxIdxDataBytes = uint64_t{1} << 30;  // read at once (4 GiB as floats)
constexpr uint64_t kIdxChunkBytes = uint64_t{16} << 20;

// An open IDX file (unsigned bytes) whose header has been read and checked.
class IdxFile {
 public:
  explicit IdxFile(const std::string& path) : path_(path) {
    // The size is that of the file opened, not of whatever the path names later.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Failure("cannot open IDX file '" + path + "': " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw Failure("IDX file '" + path + "' is not a regular file");
    }
    file_size_ = static_cast<uint64_t>(st.st_size);
    file_.reset(gzdopen(fd, "rb"));
    if (!file_) {
      ::close(fd);
      throw Failure("cannot open IDX file '" + path + "'");
    }
    uint8_t magic[4];
    read_header(magic, 4, "magic");
    if (magic[0] != 0 || magic[1] != 0)
      throw Failure("'" + path + "' is not an IDX file (bad magic)");
    if (magic[2] != 0x08)
      throw Failure("IDX file '" + path + "': only unsigned byte data (type 0x08) is supported");
    if (magic[3] < 1 || magic[3] > 4)
      throw Failure("IDX file '" + path + "': unsupported rank " + std::to_string(magic[3]));
    dims_.resize(magic[3]);
    for (size_t d = 0; d < dims_.size(); ++d) {
      uint8_t be[4];
      read_header(be, 4, field(d).c_str());
      dims_[d] = uint32_t{be[0]} << 24 | uint32_t{be[1]} << 16 | uint32_t{be[2]} << 8 | be[3];
      if (dims_[d] == 0) throw Failure(where() + "header field " + field(d) + " is 0");
    }
    gzip_ = gzdirect(file_.get()) == 0;
    // count x rows x cols (x channels), overflow-checked
    item_bytes_ = 1;
    for (size_t d = dims_.size(); d-- > 0;) {
      uint64_t& product = d == 0 ? data_bytes_ : item_bytes_;
      if (__builtin_mul_overflow(item_bytes_, uint64_t{dims_[d]}, &product))
        throw Failure(where() + "header field " + field(d) + " = " + std::to_string(dims_[d]) +
                      " makes the data size overflow 64 bits");
    }
    const uint64_t header_bytes = 4 + 4 * dims_.size();
    if (!gzip_) {
      const uint64_t held = file_size_ - std::min(file_size_, header_bytes);
      if (held != data_bytes_)
        throw Failure(where() + claim() + " needs " + std::to_string(data_bytes_) +
                      " bytes of data, the file has " + std::to_string(held) +
                      (held < data_bytes_ ? " (truncated)" : " (trailing bytes)"));
    } else {
      const uint64_t most =
          file_size_ > UINT64_MAX / kMaxDeflateRatio ? UINT64_MAX : file_size_ * kMaxDeflateRatio;
      if (data_bytes_ > most)
        throw Failure(where() + claim() + " needs " + std::to_string(data_bytes_) +
                      " bytes of data, more than a gzip file of " + std::to_string(file_size_) +
                      " bytes can hold");
    }
  }
  IdxFile(const IdxFile&) = delete;
  IdxFile& operator=(const IdxFile&) = delete;

  const std::vector<uint32_t>& dims() const { return dims_; }

  // The first `items` items (at most dims()[0]). Reading them all also checks that the data ends
  // exactly where the header says.
  std::vector<uint8_t> read(uint64_t items) {
    items = std::min<uint64_t>(items, dims_[0]);
    const uint64_t want = items * item_bytes_;  // <= data_bytes_: no overflow
    if (want > kMaxIdxDataBytes)
      throw Failure(where() + std::to_string(items) + " items of " + std::to_string(item_bytes_) +
                    " bytes are more than " + std::to_string(kMaxIdxDataBytes) +
                    " bytes at once (see --limit)");
    std::vector<uint8_t> data;
    // Grows with what the stream delivers, never ahead of it by more than one chunk.
    while (data.size() < want) {
      const size_t done = data.size();
      data.resize(static_cast<size_t>(std::min<uint64_t>(want, done + kIdxChunkBytes)));
      size_t at = done;
      while (at < data.size()) {
        const int got =
            gzread(file_.get(), data.data() + at, static_cast<unsigned>(data.size() - at));
        if (got <= 0) {
          int code = Z_OK;
          const char* message = gzerror(file_.get(), &code);
          if (got < 0 && code != Z_BUF_ERROR)
            throw Failure(where() + "corrupt data after " + std::to_string(at) + " bytes (" +
                          message + ")");
          throw Failure(where() + (gzip_ ? "the gzip stream" : "the file") + " ends after " +
                        std::to_string(at) + " of the " + std::to_string(data_bytes_) +
                        " bytes of data that " + claim() + " claims (truncated)");
        }
        at += static_cast<size_t>(got);
      }
    }
    if (gzip_ && items == dims_[0]) {
      uint8_t extra;
      const int got = gzread(file_.get(), &extra, 1);
      int code = Z_OK;
      const char* message = gzerror(file_.get(), &code);
      if (got > 0)
        throw Failure(where() + "the gzip stream holds more than the " +
                      std::to_string(data_bytes_) + " bytes of data that " + claim() + " claims");
      if (got < 0 && code != Z_BUF_ERROR)
        throw Failure(where() + "corrupt data at its end (" + message + ")");
      if (got < 0)
        throw Failure(where() + "the gzip stream is truncated after its " +
                      std::to_string(data_bytes_) + " bytes of data");
    }
    return data;
  }

 private:
  std::string where() const { return "IDX file '" + path_ + "': "; }
  std::string field(size_t d) const {
    static const char* const kNames[] = {"count", "rows", "cols", "channels"};
    if (dims_.size() == 2 && d == 1) return "size";
    return kNames[d];
  }
  // "header field count = 5000000 (x 28 x 28)"
  std::string claim() const {
    std::string text = "header field count = " + std::to_string(dims_[0]);
    if (dims_.size() > 1) {
      text += " (";
      for (size_t d = 1; d < dims_.size(); ++d)
        text += (d > 1 ? " x " : "x ") + std::to_string(dims_[d]);
      text += ")";
    }
    return text;
  }
  void read_header(uint8_t* into, unsigned bytes, const char* what) {
    if (gzread(file_.get(), into, bytes) != static_cast<int>(bytes))
      throw Failure(where() + "the header ends before its field " + what + " (truncated)");
  }

  std::string path_;
  // closed also when the constructor throws on a bad header
  struct GzClose {
    void operator()(gzFile f) const { gzclose(f); }
  };
  std::unique_ptr<gzFile_s, GzClose> file_;
  uint64_t file_size_ = 0;
  bool gzip_ = false;
  std::vector<uint32_t> dims_;
  uint64_t item_bytes_ = 1, data_bytes_ = 0;
};

}  // namespace

Dataset load_idx(const std::string& images_path, const std::string& labels_path,
                 const ImageShape& shape, int64_t limit) {
  IdxFile images(images_path);
  const std::vector<uint32_t>& dims = images.dims();
  if (dims.size() != 3 && dims.size() != 4)
    throw Failure("IDX images must be [N,H,W] or [N,H,W,C], '" + images_path + "' has rank " +
                  std::to_string(dims.size()));
  const int64_t h = dims[1], w = dims[2];
  const int64_t c = dims.size() == 4 ? dims[3] : 1;
  if (h != shape.height || w != shape.width || c != shape.channels)
    throw Failure("wrong image size: '" + images_path + "' holds " + std::to_string(c) + "x" +
                  std::to_string(h) + "x" + std::to_string(w) + " images, the bundle expects " +
                  std::to_string(shape.channels) + "x" + std::to_string(shape.height) + "x" +
                  std::to_string(shape.width) + " (CxHxW)");
  // Both headers are checked before either file's data is read.
  std::unique_ptr<IdxFile> labels;
  if (!labels_path.empty()) {
    labels = std::make_unique<IdxFile>(labels_path);
    if (labels->dims().size() != 1)
      throw Failure("IDX labels must be [N], '" + labels_path + "' has rank " +
                    std::to_string(labels->dims().size()));
    if (labels->dims()[0] != dims[0])
      throw Failure("'" + labels_path + "' has " + std::to_string(labels->dims()[0]) +
                    " labels for " + std::to_string(dims[0]) + " images");
  }
  Dataset ds;
  ds.count = limit > 0 ? std::min<uint64_t>(dims[0], static_cast<uint64_t>(limit)) : dims[0];
  {
    const std::vector<uint8_t> bytes = images.read(ds.count);
    ds.pixels.resize(bytes.size());
    // HWC bytes -> CHW floats.
    const size_t plane = static_cast<size_t>(h * w);
    for (size_t n = 0; n < ds.count; ++n)
      for (size_t p = 0; p < plane; ++p)
        for (int64_t ch = 0; ch < c; ++ch)
          ds.pixels[(n * c + ch) * plane + p] = bytes[(n * plane + p) * c + ch] / 255.0f;
  }
  if (labels) {
    const std::vector<uint8_t> bytes = labels->read(ds.count);
    ds.labels.assign(bytes.begin(), bytes.end());
  }
  return ds;
}

}  // namespace adascale::run_cli
