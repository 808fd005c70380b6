#include "runtime/bundle.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "base/durable_file.h"
#include "base/unique_fd.h"
#include "runtime/branch_costs.h"
#include "runtime/catalog_json.h"

namespace adascale {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace catalog_json;

namespace {

constexpr char kMagic[8] = {'A', 'D', 'S', 'C', 'W', 'G', 'T', '1'};
constexpr float kMinInputStd = 1e-6f;
constexpr float kMaxInputNorm = 1e6f;

// Header layout (little-endian): magic[8], u32 version, u32 header bytes, u64 file size,
// u64 tensor count, u32 crc32 of catalog.json, then zeros up to 64 bytes.
struct WeightsHeader {
  uint32_t version = 0;
  uint32_t header_bytes = 0;
  uint64_t file_size = 0;
  uint64_t tensor_count = 0;
  uint32_t catalog_crc32 = 0;
};

template <typename T>
void put(uint8_t* at, T value) {
  std::memcpy(at, &value, sizeof(T));
}
template <typename T>
T get(const uint8_t* at) {
  T value;
  std::memcpy(&value, at, sizeof(T));
  return value;
}

const uint32_t* crc_table() {
  static uint32_t table[256];
  static bool ready = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)ready;
  return table;
}

size_t align_up(size_t value) {
  return (value + kWeightsAlignment - 1) / kWeightsAlignment * kWeightsAlignment;
}

Status check_input(const BundleInput& input) {
  if (input.shape_nchw.size() != 4 || shape_elements(input.shape_nchw) <= 0)
    return error_status(ErrorCode::kFormat, "input shape must be NCHW with positive dims, got " +
                                                shape_string(input.shape_nchw));
  const size_t channels = static_cast<size_t>(input.shape_nchw[1]);
  if ((!input.mean.empty() && input.mean.size() != channels) ||
      (!input.std.empty() && input.std.size() != channels))
    return error_status(ErrorCode::kFormat, "input mean/std need one value per channel");
  // inputs are pixels in [0, 1] or [0, 255]: outside these bounds (x - mean) / std leaves the
  // range a network was trained on, or float's altogether
  for (float s : input.std)
    if (!(s >= kMinInputStd && s <= kMaxInputNorm))
      return error_status(ErrorCode::kFormat,
                          "input std " + std::to_string(s) + " is outside [1e-6, 1e6]");
  for (float m : input.mean)
    if (!(std::fabs(m) <= kMaxInputNorm))
      return error_status(ErrorCode::kFormat,
                          "input mean " + std::to_string(m) + " is outside [-1e6, 1e6]");
  return ok_status();
}

// Graph checks shared by the writer and the reader.
Status check_branch(const Branch& branch, const BundleInput& input, const ConstantMap& constants,
                    size_t class_count) {
  if (branch.name.empty()) return error_status(ErrorCode::kInvalidGraph, "branch without a name");
  DerivedWeights derived;  // shapes only: the stored tensors are not touched
  Status s = derive_weights(branch, constants, /*materialize=*/false, &derived);
  if (!s.ok()) return s;
  std::unordered_map<std::string, TensorInfo> infos;
  s = infer_shapes(derived.branch, input.nhwc(), derived.constants, &infos);
  if (!s.ok()) return s;
  const Shape& out = infos.at(branch.output).shape;
  if (class_count && (out.size() != 2 || out[1] != static_cast<int64_t>(class_count)))
    return error_status(ErrorCode::kInvalidGraph, "branch '" + branch.name + "': output " +
                                                      shape_string(out) + " is not [N," +
                                                      std::to_string(class_count) + "]");
  return ok_status();
}

// Opens a file that must be a regular one. O_NONBLOCK first, so a FIFO or a device put in a
// bundle's place is refused instead of blocking the open until someone writes to it.
Status open_regular(const std::string& path, base::UniqueFd* fd_out, size_t* size_out) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.ok())
    return error_status(ErrorCode::kIo, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return error_status(ErrorCode::kIo, path + " is not a regular file");
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  *fd_out = std::move(fd);
  *size_out = static_cast<size_t>(st.st_size);
  return ok_status();
}

Status read_file(const fs::path& path, std::string* text) {
  base::UniqueFd fd;
  size_t size = 0;
  Status s = open_regular(path.string(), &fd, &size);
  if (!s.ok()) return s;
  if (size > kMaxCatalogBytes)
    return error_status(ErrorCode::kFormat, path.string() + " is larger than " +
                                                std::to_string(kMaxCatalogBytes >> 20) + " MiB");
  text->resize(size);
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd.get(), &(*text)[got], size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got != size) return error_status(ErrorCode::kIo, "cannot read " + path.string());
  return ok_status();
}

}  // namespace

uint32_t crc32(const void* data, size_t bytes, uint32_t crc) {
  const uint32_t* table = crc_table();
  const uint8_t* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < bytes; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

// ---------------------------------------------------------------------------------------------
// BundleWriter

void BundleWriter::set_input(const Shape& shape_nchw, std::vector<float> mean,
                             std::vector<float> std) {
  input_ = BundleInput{shape_nchw, std::move(mean), std::move(std)};
}

Status BundleWriter::add_tensor(const std::string& name, DType dtype, const Shape& shape,
                                const void* data) {
  if (name.empty()) return error_status(ErrorCode::kInvalidArgument, "tensor without a name");
  if (tensor_data_.count(name))
    return error_status(ErrorCode::kInvalidArgument, "tensor '" + name + "' added twice");
  const int64_t elements = shape_elements(shape);
  if (elements < 0 || (elements > 0 && !data))
    return error_status(ErrorCode::kInvalidArgument, "tensor '" + name + "': bad shape or data");
  const size_t bytes = static_cast<size_t>(elements) * dtype_size(dtype);
  std::vector<uint8_t>& stored = tensor_data_[name];
  stored.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + bytes);
  constants_[name] = ConstTensor{dtype, shape, stored.data()};
  tensor_order_.push_back(name);
  return ok_status();
}

Status BundleWriter::add_f32(const std::string& name, const Shape& shape,
                             const std::vector<float>& values) {
  if (shape_elements(shape) != static_cast<int64_t>(values.size()))
    return error_status(ErrorCode::kInvalidArgument, "tensor '" + name + "': size mismatch");
  return add_tensor(name, DType::kF32, shape, values.data());
}
Status BundleWriter::add_i8(const std::string& name, const Shape& shape,
                            const std::vector<int8_t>& values) {
  if (shape_elements(shape) != static_cast<int64_t>(values.size()))
    return error_status(ErrorCode::kInvalidArgument, "tensor '" + name + "': size mismatch");
  return add_tensor(name, DType::kI8, shape, values.data());
}
Status BundleWriter::add_i32(const std::string& name, const Shape& shape,
                             const std::vector<int32_t>& values) {
  if (shape_elements(shape) != static_cast<int64_t>(values.size()))
    return error_status(ErrorCode::kInvalidArgument, "tensor '" + name + "': size mismatch");
  return add_tensor(name, DType::kI32, shape, values.data());
}

Status BundleWriter::add_branch(const Branch& branch) {
  Status s = check_input(input_);
  if (!s.ok()) return s;
  for (const Branch& other : branches_)
    if (other.name == branch.name)
      return error_status(ErrorCode::kInvalidArgument, "branch '" + branch.name + "' added twice");
  s = check_branch(branch, input_, constants_, classes_.size());
  if (!s.ok()) return s;
  // the reader refuses costs that break the schema, so they are refused here, not in a bundle
  BranchCosts costs;
  s = parse_branch_costs(branch.name, branch.costs_json, &costs);
  if (!s.ok()) return error_status(ErrorCode::kInvalidArgument, s.message);
  branches_.push_back(branch);
  return ok_status();
}

Status BundleWriter::write(const std::string& path) const {
  Status s = check_input(input_);
  if (!s.ok()) return s;
  if (branches_.empty()) return error_status(ErrorCode::kInvalidArgument, "bundle has no branch");
  // Lay tensors out at aligned offsets after the header.
  json tensors = json::array();
  std::vector<size_t> offsets;
  size_t end = kWeightsHeaderBytes;
  for (const std::string& name : tensor_order_) {
    const std::vector<uint8_t>& data = tensor_data_.at(name);
    const ConstTensor& t = constants_.at(name);
    const size_t offset = align_up(end);
    offsets.push_back(offset);
    end = offset + data.size();
    tensors.push_back({{"name", name},
                       {"dtype", dtype_name(t.dtype)},
                       {"shape", t.shape},
                       {"offset", offset},
                       {"bytes", data.size()},
                       {"crc32", crc32(data.data(), data.size())}});
  }
  const size_t file_size = align_up(end);
  json branches = json::array();
  for (const Branch& branch : branches_) branches.push_back(branch_to_json(branch));
  const json catalog = {{"schema_version", kBundleSchemaVersion},
                        {"model", model_name_},
                        {"input",
                         {{"layout", "NCHW"},
                          {"shape", input_.shape_nchw},
                          {"mean", input_.mean},
                          {"std", input_.std}}},
                        {"classes", classes_},
                        {"tensors", tensors},
                        {"branches", branches}};
  const std::string catalog_text = catalog.dump(1) + "\n";

  std::vector<uint8_t> weights(file_size, 0);
  std::memcpy(weights.data(), kMagic, sizeof(kMagic));
  put<uint32_t>(&weights[8], kWeightsVersion);
  put<uint32_t>(&weights[12], static_cast<uint32_t>(kWeightsHeaderBytes));
  put<uint64_t>(&weights[16], file_size);
  put<uint64_t>(&weights[24], tensor_order_.size());
  put<uint32_t>(&weights[32], crc32(catalog_text.data(), catalog_text.size()));
  for (size_t i = 0; i < tensor_order_.size(); ++i) {
    const std::vector<uint8_t>& data = tensor_data_.at(tensor_order_[i]);
    if (!data.empty()) std::memcpy(&weights[offsets[i]], data.data(), data.size());
  }

  // a finished bundle is built in a temporary sibling folder, fsynced, and swapped into place in
  // one step, so `path` names a complete bundle at every moment (base/durable_file.h)
  base::remove_stale_temps(path, "tmp");
  base::remove_stale_temps(path, "old");
  const std::string temp = base::unique_temp_path(path, "tmp");
  std::error_code ec;
  if (!fs::create_directories(temp, ec) || ec)
    return error_status(ErrorCode::kIo, "cannot create " + temp + ": " + ec.message());
  std::string error;
  const bool written =
      base::write_file_atomic(temp + "/weights.bin", weights.data(), weights.size(), &error) &&
      base::write_file_atomic(temp + "/catalog.json", catalog_text.data(), catalog_text.size(),
                              &error) &&
      base::fsync_path(temp, &error) && base::replace_path(temp, path, &error);
  if (!written) {
    fs::remove_all(temp, ec);
    return error_status(ErrorCode::kIo, "cannot write bundle: " + error);
  }
  return ok_status();
}

// ---------------------------------------------------------------------------------------------
// Bundle

Bundle::~Bundle() {
  if (map_) ::munmap(map_, map_bytes_);
}

const Branch* Bundle::find_branch(const std::string& name) const {
  for (const Branch& branch : branches_)
    if (branch.name == name) return &branch;
  return nullptr;
}

Status Bundle::open(const std::string& path, std::unique_ptr<Bundle>* out) {
  std::unique_ptr<Bundle> bundle(new Bundle());
  Status s = bundle->load(path);
  if (s.ok()) *out = std::move(bundle);
  return s;
}

Status Bundle::load(const std::string& path) {
  const fs::path dir(path);
  // Map weights.bin read-only.
  const std::string weights_path = (dir / "weights.bin").string();
  base::UniqueFd fd;
  size_t size = 0;
  Status opened = open_regular(weights_path, &fd, &size);
  if (!opened.ok()) return opened;
  if (size < kWeightsHeaderBytes)
    return error_status(ErrorCode::kFormat, "weights.bin truncated: " + std::to_string(size) +
                                                " bytes is smaller than its header");
  // the mapping keeps the file; the descriptor is not needed past this point
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  fd.reset();
  if (map == MAP_FAILED) return error_status(ErrorCode::kIo, "cannot mmap " + weights_path);
  map_ = map;
  map_bytes_ = size;
  std::string text;
  Status s = read_file(dir / "catalog.json", &text);
  if (!s.ok()) return s;
  return parse(text, static_cast<const uint8_t*>(map_), size);
}

Status Bundle::open_from_memory(std::string catalog_json, std::vector<uint8_t> weights,
                                std::unique_ptr<Bundle>* out) {
  std::unique_ptr<Bundle> bundle(new Bundle());
  bundle->owned_weights_ = std::move(weights);
  bundle->map_bytes_ = bundle->owned_weights_.size();
  Status s = bundle->parse(catalog_json, bundle->owned_weights_.data(), bundle->map_bytes_);
  if (s.ok()) *out = std::move(bundle);
  return s;
}

Status Bundle::parse(const std::string& text, const uint8_t* base, size_t size) {
  if (size < kWeightsHeaderBytes)
    return error_status(ErrorCode::kFormat, "weights.bin truncated: " + std::to_string(size) +
                                                " bytes is smaller than its header");
  if (text.size() > kMaxCatalogBytes)
    return error_status(ErrorCode::kFormat, "catalog.json too large");
  if (std::memcmp(base, kMagic, sizeof(kMagic)) != 0)
    return error_status(ErrorCode::kFormat, "weights.bin: bad magic (not an ADSCWGT1 file)");
  WeightsHeader header;
  header.version = get<uint32_t>(base + 8);
  header.header_bytes = get<uint32_t>(base + 12);
  header.file_size = get<uint64_t>(base + 16);
  header.tensor_count = get<uint64_t>(base + 24);
  header.catalog_crc32 = get<uint32_t>(base + 32);
  if (header.version != kWeightsVersion)
    return error_status(ErrorCode::kSchemaVersion,
                        "weights.bin version " + std::to_string(header.version) +
                            " is not supported (expected " + std::to_string(kWeightsVersion) + ")");
  if (header.header_bytes != kWeightsHeaderBytes)
    return error_status(ErrorCode::kFormat, "weights.bin: bad header size");
  if (header.file_size != size)
    return error_status(ErrorCode::kFormat, "weights.bin truncated or padded: header says " +
                                                std::to_string(header.file_size) +
                                                " bytes, file has " + std::to_string(size));

  Status s;
  if (crc32(text.data(), text.size()) != header.catalog_crc32)
    return error_status(ErrorCode::kChecksum,
                        "catalog.json checksum mismatch (corrupt, or edited without re-export)");
  bool too_deep = false;
  const json catalog = parse_bounded(text, kMaxCatalogDepth, &too_deep);
  if (too_deep)
    return format_error("nested deeper than " + std::to_string(kMaxCatalogDepth) + " levels");
  if (catalog.is_discarded() || !catalog.is_object()) return format_error("not a JSON object");
  try {
    for (const auto& item : catalog.items())
      if (item.key() != "schema_version" && item.key() != "model" && item.key() != "input" &&
          item.key() != "classes" && item.key() != "tensors" && item.key() != "branches")
        return format_error("unknown key '" + item.key() + "'");
    if (!catalog.contains("schema_version") || !catalog["schema_version"].is_number_integer())
      return format_error("missing integer schema_version");
    const int64_t version = catalog["schema_version"].get<int64_t>();
    if (version < kOldestBundleSchemaVersion || version > kBundleSchemaVersion)
      return error_status(ErrorCode::kSchemaVersion,
                          "catalog.json schema_version " + std::to_string(version) +
                              " is not supported (expected " +
                              std::to_string(kOldestBundleSchemaVersion) + " to " +
                              std::to_string(kBundleSchemaVersion) + ")");
    model_name_ = get_name(catalog.at("model"), "model");
    const json& input = catalog.at("input");
    if (!input.is_object()) return format_error("input must be an object");
    for (const auto& item : input.items())
      if (item.key() != "layout" && item.key() != "shape" && item.key() != "mean" &&
          item.key() != "std")
        return format_error("input: unknown key '" + item.key() + "'");
    if (input.contains("layout") && get_name(input["layout"], "input layout") != "NCHW")
      return format_error("input layout must be \"NCHW\"");
    input_.shape_nchw = get_shape(input.at("shape"), "input shape");
    if (input.contains("mean")) input_.mean = get_floats(input["mean"], "input mean");
    if (input.contains("std")) input_.std = get_floats(input["std"], "input std");
    s = check_input(input_);
    if (!s.ok()) return s;
    if (catalog.contains("classes")) {
      const json& classes = catalog["classes"];
      if (!classes.is_array()) return format_error("classes must be an array of strings");
      check_count(classes.size(), kMaxClasses, "class count");
      for (const json& name : classes) classes_.push_back(get_name(name, "class name"));
    }

    const json& tensors = catalog.at("tensors");
    if (!tensors.is_array()) return format_error("tensors must be an array");
    check_count(tensors.size(), kMaxTensors, "tensor count");
    if (tensors.size() != header.tensor_count)
      return format_error("tensor count " + std::to_string(tensors.size()) +
                          " differs from weights.bin header (" +
                          std::to_string(header.tensor_count) + ")");
    for (const json& jt : tensors) {
      if (!jt.is_object()) return format_error("tensor entry is not an object");
      const std::string name = get_name(jt.at("name"), "tensor name");
      const std::string where = "tensor '" + name + "': ";
      if (name.empty() || constants_.count(name)) return format_error(where + "empty or duplicate");
      for (const auto& item : jt.items())
        if (item.key() != "name" && item.key() != "dtype" && item.key() != "shape" &&
            item.key() != "offset" && item.key() != "bytes" && item.key() != "crc32")
          return format_error(where + "unknown key '" + item.key() + "'");
      ConstTensor t;
      if (!parse_dtype(get_name(jt.at("dtype"), where + "dtype"), &t.dtype))
        return format_error(where + "unknown dtype");
      t.shape = get_shape(jt.at("shape"), where + "shape");
      const uint64_t offset = get_u64(jt.at("offset"), where + "offset");
      const uint64_t bytes = get_u64(jt.at("bytes"), where + "bytes");
      const uint64_t crc = get_u64(jt.at("crc32"), where + "crc32");
      if (crc > 0xFFFFFFFFu) return format_error(where + "crc32 is not a 32-bit value");
      const int64_t elements = shape_elements(t.shape);
      if (t.shape.size() > 8 || elements < 0 ||
          static_cast<uint64_t>(elements) * dtype_size(t.dtype) != bytes)
        return format_error(where + "shape " + shape_string(t.shape) + " does not match " +
                            std::to_string(bytes) + " bytes of " + dtype_name(t.dtype));
      if (offset % kWeightsAlignment != 0 || offset < kWeightsHeaderBytes)
        return error_status(ErrorCode::kFormat, where + "offset " + std::to_string(offset) +
                                                    " is not 64-byte aligned past the header");
      if (offset > size || bytes > size - offset)
        return error_status(ErrorCode::kOutOfRange,
                            where + "[" + std::to_string(offset) + ", +" + std::to_string(bytes) +
                                ") lies outside weights.bin (" + std::to_string(size) + " bytes)");
      if (crc32(base + offset, bytes) != crc)
        return error_status(ErrorCode::kChecksum, where + "crc32 mismatch (weights corrupt)");
      t.data = base + offset;
      constants_[name] = t;
    }

    const json& branches = catalog.at("branches");
    if (!branches.is_array() || branches.empty())
      return format_error("branches must be a non-empty array");
    check_count(branches.size(), kMaxBranches, "branch count");
    std::set<std::string> names;
    for (const json& jb : branches) {
      Branch branch;
      s = branch_from_json(jb, &branch);
      if (!s.ok()) return s;
      if (!names.insert(branch.name).second)
        return format_error("branch '" + branch.name + "' appears twice");
      s = check_branch(branch, input_, constants_, classes_.size());
      if (!s.ok()) return s;
      branches_.push_back(std::move(branch));
    }
  } catch (const json::exception& e) {
    return format_error(std::string("malformed: ") + e.what());
  } catch (const CatalogError& e) {
    return format_error(e.what());
  }
  return ok_status();
}

}  // namespace adascale
