// adascale-run: runs one branch of a bundle over IDX files (MNIST style, plain or .gz) or a folder
// of PNG images and reports accuracy, per-image latency and throughput; --list prints the branches
// with the costs recorded in the catalog; --scenario replays a contention scenario (CPU burner
// processes, memory balloons, budget changes) once per policy and writes traces and pictures
// (scenario_run.h). Inference goes through the public C API only, so what it measures is what an
// application gets; the scenario replay drives the adaptation loop's C++ class directly so that
// its driver thread can read the loop's context without sharing the handle.
#include <fcntl.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "adascale.h"
#include "runtime/cli/scenario_run.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// --backend names, parsed and printed from this one table
constexpr std::pair<const char*, adascale_backend> kBackends[] = {
    {"xnnpack", ADASCALE_BACKEND_XNNPACK},
    {"xnnpack-plain", ADASCALE_BACKEND_XNNPACK_PLAIN},
    {"reference", ADASCALE_BACKEND_REFERENCE}};

constexpr const char* kUsage =
    "usage: adascale-run --bundle X.bundle [--branch NAME]\n"
    "                    (--images DIR | --idx IMAGES [--labels LABELS])\n"
    "                    [--backend xnnpack|xnnpack-plain|reference] [--threads N] [--limit N]\n"
    "                    [--list]\n"
    "  --backend      xnnpack (default) also runs the runtime's own kernels where the CPU has\n"
    "                 them (int8 convolution on AVX512-VNNI); xnnpack-plain runs XNNPACK alone\n"
    "  --images DIR   one sub-folder per class (named as in the catalog) holding PNG files;\n"
    "                 PNG files directly in DIR are unlabelled. Images are resized (bilinear)\n"
    "                 and converted to the bundle's channel count.\n"
    "  --idx IMAGES   IDX ubyte images [N,H,W] or [N,H,W,C], plain or gzip; --labels: IDX [N]\n"
    "  --list         print the branches and their catalog costs, then exit\n"
    "       adascale-run --bundle X.bundle [--branch NAME] --profile RUNS [--backend B]\n"
    "  --profile N    run the branch N times on one input and print the median time of every\n"
    "                 node and of every layer type (needs no images)\n"
    "       adascale-run --bundle X.bundle --scenario S.ini --idx IMAGES --labels LABELS\n"
    "                    [--trace-out DIR] [--policy adaptive|largest|smallest|hindsight|all]\n"
    "  --scenario S   replay a contention scenario (docs/scenarios.md) once per policy (default\n"
    "                 all), cycling through the images; prints a summary table\n"
    "  --trace-out D  write a trace CSV and an SVG per policy, and the summary, into D\n"
    "Pixels are scaled to [0,1]; the runtime applies the catalog's mean/std.\n";

// Every user-facing failure: main prints it on one line and exits non-zero.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string bundle, branch, images_dir, idx_images, idx_labels;
  std::string scenario, trace_out, policy = "all";
  adascale_backend backend = ADASCALE_BACKEND_XNNPACK;
  int threads = 1;
  int64_t limit = -1;
  int64_t profile_runs = 0;  // > 0: --profile
  bool list = false;
};

int64_t parse_int(const std::string& flag, const std::string& text, int64_t lo) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || value < lo)
    throw Failure(flag + " needs an integer >= " + std::to_string(lo) + ", got '" + text + "'");
  return value;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Failure(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--bundle") {
      o.bundle = value();
    } else if (arg == "--branch") {
      o.branch = value();
    } else if (arg == "--images") {
      o.images_dir = value();
    } else if (arg == "--idx") {
      o.idx_images = value();
    } else if (arg == "--labels") {
      o.idx_labels = value();
    } else if (arg == "--backend") {
      const std::string name = value();
      const auto* known = std::find_if(std::begin(kBackends), std::end(kBackends),
                                       [&](const auto& b) { return name == b.first; });
      if (known == std::end(kBackends))
        throw Failure("--backend must be xnnpack, xnnpack-plain or reference, got '" + name + "'");
      o.backend = known->second;
    } else if (arg == "--threads") {
      o.threads = static_cast<int>(std::min<int64_t>(parse_int(arg, value(), 1), 1024));
    } else if (arg == "--limit") {
      o.limit = parse_int(arg, value(), 1);
    } else if (arg == "--list") {
      o.list = true;
    } else if (arg == "--profile") {
      o.profile_runs = parse_int(arg, value(), 1);
      if (o.profile_runs > 100000) throw Failure("--profile needs at most 100000 runs");
    } else if (arg == "--scenario") {
      o.scenario = value();
    } else if (arg == "--trace-out") {
      o.trace_out = value();
    } else if (arg == "--policy") {
      o.policy = value();
    } else {
      throw Failure("unknown argument '" + arg + "' (see --help)");
    }
  }
  if (o.bundle.empty()) throw Failure("--bundle is required (see --help)");
  if (o.profile_runs > 0) {
    if (!o.images_dir.empty() || !o.idx_images.empty() || !o.idx_labels.empty() ||
        !o.scenario.empty() || !o.trace_out.empty() || o.policy != "all" || o.limit > 0 || o.list)
      throw Failure(
          "--profile runs on its own input: no --images, --idx, --labels, --limit, --list, "
          "--scenario, --trace-out or --policy");
  } else if (!o.list) {
    if (o.images_dir.empty() == o.idx_images.empty())
      throw Failure("give exactly one of --images DIR and --idx IMAGES (see --help)");
    if (!o.idx_labels.empty() && o.idx_images.empty()) throw Failure("--labels goes with --idx");
  }
  if (o.scenario.empty()) {
    if (!o.trace_out.empty() || o.policy != "all")
      throw Failure("--trace-out and --policy go with --scenario");
  } else if (!o.list) {
    if (o.idx_images.empty() || o.idx_labels.empty())
      throw Failure("--scenario needs --idx IMAGES and --labels LABELS");
    if (!o.branch.empty()) throw Failure("--branch does not go with --scenario (see --policy)");
  }
  return o;
}

// Owns the C API handle so every exit path closes it.
class Runtime {
 public:
  Runtime(const Options& o) {
    char message[512] = {0};
    if (adascale_open_ex(o.bundle.c_str(), o.backend, o.threads, &rt_, message, sizeof(message)) !=
        ADASCALE_OK)
      throw Failure("cannot open bundle '" + o.bundle + "': " + message);
    int64_t dims[4];
    adascale_input_shape(rt_, dims);
    channels = dims[1];
    height = dims[2];
    width = dims[3];
    size_t count = 0;
    adascale_branch_count(rt_, &count);
    for (size_t i = 0; i < count; ++i) {
      adascale_branch_info info;
      adascale_branch_info_at(rt_, i, &info);
      branches.emplace_back(info.name, info.costs_json);
    }
    size_t class_count = 0;
    adascale_class_count(rt_, &class_count);
    classes = class_count;
  }
  ~Runtime() { adascale_close(rt_); }
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  void check(adascale_status status, const std::string& what) const {
    if (status != ADASCALE_OK) throw Failure(what + ": " + adascale_last_error(rt_));
  }
  adascale_runtime* get() { return rt_; }

  int64_t channels = 0, height = 0, width = 0;
  size_t classes = 0;
  std::vector<std::pair<std::string, std::string>> branches;  // name, costs JSON

 private:
  adascale_runtime* rt_ = nullptr;
};

// Images as NCHW floats in [0, 1]; label -1 means unknown.
struct Dataset {
  std::vector<float> pixels;
  std::vector<int64_t> labels;
  size_t count = 0;
  bool labelled() const { return !labels.empty(); }
};

// ---------------------------------------------------------------------------------------------
// --list

// Numeric leaves of the costs object, nested keys joined with '.' ("latency_ms.median").
void flatten_numbers(const json& j, const std::string& prefix, std::map<std::string, double>* out,
                     std::vector<std::string>* order) {
  for (const auto& item : j.items()) {
    const std::string key = prefix.empty() ? item.key() : prefix + "." + item.key();
    if (item.value().is_object()) {
      flatten_numbers(item.value(), key, out, order);
    } else if (item.value().is_number()) {
      if (std::find(order->begin(), order->end(), key) == order->end()) order->push_back(key);
      (*out)[key] = item.value().get<double>();
    }
  }
}

std::string format_number(double v) {
  char text[64];
  if (std::fabs(v) < 1e15 && v == std::floor(v))
    std::snprintf(text, sizeof(text), "%.0f", v);
  else
    std::snprintf(text, sizeof(text), "%.4g", v);
  return text;
}

void print_list(const Runtime& rt) {
  std::vector<std::string> columns{"branch"};
  std::vector<std::map<std::string, double>> rows;
  for (const auto& branch : rt.branches) {
    const json costs = json::parse(branch.second, nullptr, false);
    rows.emplace_back();
    if (costs.is_object()) flatten_numbers(costs, "", &rows.back(), &columns);
  }
  std::vector<std::vector<std::string>> cells;
  for (size_t r = 0; r < rows.size(); ++r) {
    cells.push_back({rt.branches[r].first});
    for (size_t c = 1; c < columns.size(); ++c) {
      auto it = rows[r].find(columns[c]);
      cells.back().push_back(it == rows[r].end() ? "-" : format_number(it->second));
    }
  }
  std::vector<size_t> widths;
  for (size_t c = 0; c < columns.size(); ++c) {
    size_t w = columns[c].size();
    for (const auto& row : cells) w = std::max(w, row[c].size());
    widths.push_back(w);
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    for (size_t c = 0; c < row.size(); ++c)
      std::printf(c == 0 ? "%-*s" : "  %*s", static_cast<int>(widths[c]), row[c].c_str());
    std::printf("\n");
  };
  std::printf("%zu branches, input %lldx%lldx%lld (CxHxW), %zu classes\n", rt.branches.size(),
              static_cast<long long>(rt.channels), static_cast<long long>(rt.height),
              static_cast<long long>(rt.width), rt.classes);
  print_row(columns);
  for (const auto& row : cells) print_row(row);
}

// ---------------------------------------------------------------------------------------------
// IDX (plain or gzip). What the header claims is checked before anything is allocated for the
// data: for a plain file against the file's size, which must match exactly; for a gzip file
// against the most its size can expand to, and then while the stream is read in chunks, which
// must end exactly at the claim.

constexpr uint64_t kMaxIdxDataBytes = uint64_t{1} << 30;  // read at once (4 GiB as floats)
constexpr uint64_t kMaxDeflateRatio = 1032;  // no deflate stream expands its input more than this
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

Dataset load_idx(const Options& o, const Runtime& rt) {
  IdxFile images(o.idx_images);
  const std::vector<uint32_t>& dims = images.dims();
  if (dims.size() != 3 && dims.size() != 4)
    throw Failure("IDX images must be [N,H,W] or [N,H,W,C], '" + o.idx_images + "' has rank " +
                  std::to_string(dims.size()));
  const int64_t h = dims[1], w = dims[2];
  const int64_t c = dims.size() == 4 ? dims[3] : 1;
  if (h != rt.height || w != rt.width || c != rt.channels)
    throw Failure("wrong image size: '" + o.idx_images + "' holds " + std::to_string(c) + "x" +
                  std::to_string(h) + "x" + std::to_string(w) + " images, the bundle expects " +
                  std::to_string(rt.channels) + "x" + std::to_string(rt.height) + "x" +
                  std::to_string(rt.width) + " (CxHxW)");
  // Both headers are checked before either file's data is read.
  std::unique_ptr<IdxFile> labels;
  if (!o.idx_labels.empty()) {
    labels = std::make_unique<IdxFile>(o.idx_labels);
    if (labels->dims().size() != 1)
      throw Failure("IDX labels must be [N], '" + o.idx_labels + "' has rank " +
                    std::to_string(labels->dims().size()));
    if (labels->dims()[0] != dims[0])
      throw Failure("'" + o.idx_labels + "' has " + std::to_string(labels->dims()[0]) +
                    " labels for " + std::to_string(dims[0]) + " images");
  }
  Dataset ds;
  ds.count = o.limit > 0 ? std::min<uint64_t>(dims[0], static_cast<uint64_t>(o.limit)) : dims[0];
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

// ---------------------------------------------------------------------------------------------
// PNG folders

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
std::vector<float> read_png(const std::string& path, const Runtime& rt) {
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
  switch (rt.channels) {
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
      throw Failure("the bundle expects " + std::to_string(rt.channels) +
                    " channels; PNG input supports 1, 3 or 4");
  }
  const int64_t c = rt.channels, h = image.height, w = image.width;
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
  if (h == rt.height && w == rt.width) return chw;
  return resize_bilinear(chw, c, h, w, rt.height, rt.width);
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

Dataset load_png_folder(const Options& o, const Runtime& rt, std::vector<std::string> classes) {
  const fs::path root(o.images_dir);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw Failure("'" + o.images_dir + "' is not a directory");
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
    throw Failure("'" + o.images_dir + "' mixes loose PNG files with class folders");
  if (files.empty()) files = std::move(labelled);
  if (files.empty()) throw Failure("no PNG files under '" + o.images_dir + "'");
  if (o.limit > 0 && files.size() > static_cast<size_t>(o.limit)) files.resize(o.limit);
  Dataset ds;
  ds.count = files.size();
  const size_t image = static_cast<size_t>(rt.channels * rt.height * rt.width);
  ds.pixels.reserve(ds.count * image);
  for (const auto& file : files) {
    const std::vector<float> chw = read_png(file.first.string(), rt);
    ds.pixels.insert(ds.pixels.end(), chw.begin(), chw.end());
  }
  if (files.front().second >= 0)
    for (const auto& file : files) ds.labels.push_back(file.second);
  return ds;
}

// ---------------------------------------------------------------------------------------------

double percentile(std::vector<double> sorted, double q) {
  const size_t index = static_cast<size_t>(std::ceil(q * sorted.size())) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

constexpr size_t kMaxCatalogBytes = size_t{64} << 20;

std::vector<std::string> class_names(const Options& o) {
  // The C API exposes only the class count, so the names come from the catalog itself (already
  // validated by adascale_open_ex).
  const std::string path = (fs::path(o.bundle) / "catalog.json").string();
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return {};
  std::string text;
  char buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof(buffer), f)) > 0 && text.size() <= kMaxCatalogBytes)
    text.append(buffer, got);
  std::fclose(f);
  // the runtime's own limit; a catalog that grew past it since the bundle was opened is refused
  if (text.size() > kMaxCatalogBytes)
    throw Failure("'" + path + "' is larger than " + std::to_string(kMaxCatalogBytes) + " bytes");
  const json catalog = json::parse(text, nullptr, false);
  if (!catalog.is_object() || !catalog.contains("classes") || !catalog["classes"].is_array())
    return {};
  std::vector<std::string> names;
  for (const json& name : catalog["classes"])
    if (name.is_string()) names.push_back(name.get<std::string>());
  return names;
}

int run_scenario(const Options& o, Runtime& rt) {
  namespace sc = adascale::scenario;
  sc::Scenario scenario;
  std::vector<sc::Policy> policies;
  try {
    scenario = sc::load_scenario(o.scenario);
    policies = sc::parse_policies(o.policy);
  } catch (const sc::ScenarioError& e) {
    throw Failure(e.what());
  }
  if (!o.trace_out.empty()) {
    std::error_code ec;
    fs::create_directories(o.trace_out, ec);
    if (ec) throw Failure("cannot create '" + o.trace_out + "': " + ec.message());
  }
  const Dataset ds = load_idx(o, rt);
  if (rt.classes == 0) throw Failure("the catalog names no classes, so labels cannot be scored");
  for (int64_t label : ds.labels)
    if (label < 0 || static_cast<size_t>(label) >= rt.classes)
      throw Failure("label " + std::to_string(label) + " is outside the bundle's " +
                    std::to_string(rt.classes) + " classes");
  sc::Workload w;
  w.runtime = rt.get();
  for (const auto& branch : rt.branches) {
    adascale::BranchCosts costs;
    if (!adascale::parse_branch_costs(branch.first, branch.second, &costs).ok()) {
      costs = adascale::BranchCosts{};
      costs.name = branch.first;
    }
    w.costs.push_back(costs);
  }
  w.pixels = ds.pixels.data();
  w.labels = ds.labels.data();
  w.count = ds.count;
  w.image_floats = static_cast<size_t>(rt.channels * rt.height * rt.width);
  w.classes = rt.classes;
  sc::RunOptions options;
  options.trace_dir = o.trace_out;
  options.policies = policies;
  sc::install_interrupt_handlers();
  std::vector<sc::PolicySummary> summaries;
  std::string write_error;  // a trace that could not be written: reported after the summary
  try {
    summaries = sc::run_scenario(scenario, w, options, &write_error);
  } catch (const sc::ScenarioError& e) {
    if (sc::interrupted()) {
      std::fprintf(stderr, "adascale-run: interrupted\n");
      return 130;
    }
    throw Failure(e.what());
  }
  std::fputs(sc::format_summary(scenario, summaries).c_str(), stdout);
  for (const auto& s : summaries)
    if (!s.trace_csv.empty())
      std::printf("trace %-10s %s %s\n", sc::policy_name(s.policy), s.trace_csv.c_str(),
                  s.trace_svg.c_str());
  if (!write_error.empty()) throw Failure(write_error);
  return 0;
}

const char* backend_name(adascale_backend backend) {
  for (const auto& b : kBackends)
    if (b.second == backend) return b.first;
  return "?";
}

// --profile: where the time of one inference goes, per node and per layer type.
int run_profile(const Options& o, Runtime& rt, const std::string& branch) {
  size_t count = 0;
  rt.check(adascale_profile(rt.get(), 1, nullptr, 0, &count), "profile failed");  // count only
  std::vector<adascale_node_timing> nodes(count);
  rt.check(
      adascale_profile(rt.get(), static_cast<int>(o.profile_runs), nodes.data(), count, &count),
      "profile failed");
  double total = 0;
  for (const auto& n : nodes) total += n.median_us;
  std::printf("branch %s (backend %s, %d thread%s), medians of %lld runs, batch 1\n",
              branch.c_str(), backend_name(o.backend), o.threads, o.threads == 1 ? "" : "s",
              static_cast<long long>(o.profile_runs));
  std::printf("%-32s %-18s %-5s %-10s %10s %7s\n", "node (output)", "layer", "dtype", "kernel",
              "us", "share");
  for (const auto& n : nodes)
    std::printf("%-32s %-18s %-5s %-10s %10.2f %6.1f%%\n", n.output, n.layer, n.dtype, n.kernel,
                n.median_us, total > 0 ? 100 * n.median_us / total : 0.0);
  // per layer type and output precision, in order of first appearance
  std::vector<std::pair<std::string, std::pair<int, double>>> layers;
  for (const auto& n : nodes) {
    const std::string key = std::string(n.layer) + " " + n.dtype;
    auto it =
        std::find_if(layers.begin(), layers.end(), [&](const auto& l) { return l.first == key; });
    if (it == layers.end()) it = layers.insert(layers.end(), {key, {0, 0.0}});
    it->second.first += 1;
    it->second.second += n.median_us;
  }
  std::printf("\n%-26s %6s %10s %7s\n", "layer type", "nodes", "us", "share");
  for (const auto& l : layers)
    std::printf("%-26s %6d %10.2f %6.1f%%\n", l.first.c_str(), l.second.first, l.second.second,
                total > 0 ? 100 * l.second.second / total : 0.0);
  std::printf("%-26s %6zu %10.2f\n", "total (sum of medians)", nodes.size(), total);
  return 0;
}

int run(const Options& o) {
  Runtime rt(o);
  if (o.list) {
    print_list(rt);
    return 0;
  }
  if (!o.scenario.empty()) return run_scenario(o, rt);
  const std::string branch = o.branch.empty() ? rt.branches.front().first : o.branch;
  if (std::none_of(rt.branches.begin(), rt.branches.end(),
                   [&](const auto& b) { return b.first == branch; }))
    throw Failure("unknown branch '" + branch + "' (--list shows the branches)");
  rt.check(adascale_select(rt.get(), branch.c_str()), "cannot prepare branch '" + branch + "'");
  if (o.profile_runs > 0) return run_profile(o, rt, branch);

  const Dataset ds =
      o.idx_images.empty() ? load_png_folder(o, rt, class_names(o)) : load_idx(o, rt);
  const size_t image = static_cast<size_t>(rt.channels * rt.height * rt.width);
  const size_t outputs = rt.classes;
  if (ds.labelled() && outputs == 0)
    throw Failure("the catalog names no classes, so labels cannot be scored");
  for (int64_t label : ds.labels)
    if (label < 0 || static_cast<size_t>(label) >= outputs)
      throw Failure("label " + std::to_string(label) + " is outside the bundle's " +
                    std::to_string(outputs) + " classes");
  // Without classes the logit count is not exposed; a generous buffer still lets the run time.
  std::vector<float> logits(outputs ? outputs : 1 << 16);
  const size_t capacity = logits.size();

  // One untimed run: XNNPACK's first call touches cold code and pages.
  rt.check(adascale_run(rt.get(), ds.pixels.data(), image, logits.data(), capacity), "run failed");
  std::vector<double> ms(ds.count);
  size_t correct = 0;
  const auto loop_start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < ds.count; ++i) {
    const auto start = std::chrono::steady_clock::now();
    rt.check(adascale_run(rt.get(), ds.pixels.data() + i * image, image, logits.data(), capacity),
             "run failed");
    ms[i] =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (ds.labelled()) {
      const size_t best =
          static_cast<size_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      correct += best == static_cast<size_t>(ds.labels[i]);
    }
  }
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count();
  const double total = std::accumulate(ms.begin(), ms.end(), 0.0);
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  std::printf("bundle      %s\nbranch      %s (backend %s, %d thread%s)\n", o.bundle.c_str(),
              branch.c_str(), backend_name(o.backend), o.threads, o.threads == 1 ? "" : "s");
  std::printf("images      %zu (%lldx%lldx%lld CxHxW)\n", ds.count,
              static_cast<long long>(rt.channels), static_cast<long long>(rt.height),
              static_cast<long long>(rt.width));
  if (ds.labelled())
    std::printf("accuracy    %.2f%% (%zu/%zu)\n", 100.0 * correct / ds.count, correct, ds.count);
  else
    std::printf("accuracy    n/a (no labels)\n");
  std::printf("latency     median %.4f ms, p90 %.4f ms, mean %.4f ms per image (batch 1)\n",
              percentile(sorted, 0.5), percentile(sorted, 0.9), total / ds.count);
  std::printf("throughput  %.1f images/s (whole loop, one image at a time)\n",
              wall_s > 0 ? ds.count / wall_s : 0.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
  try {
    return run(parse_args(argc, argv));
  } catch (const Failure& e) {
    std::fprintf(stderr, "adascale-run: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "adascale-run: error: %s\n", e.what());
    return 1;
  }
}
