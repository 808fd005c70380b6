#include "runtime/bundle.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

namespace adascale {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr char kMagic[8] = {'A', 'D', 'S', 'C', 'W', 'G', 'T', '1'};
constexpr size_t kMaxCatalogBytes = 64u << 20;

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

json attrs_to_json(const Attrs& attrs) {
  json out = json::object();
  for (const auto& kv : attrs.numbers) {
    if (kv.second.size() == 1)
      out[kv.first] = kv.second[0];
    else
      out[kv.first] = kv.second;
  }
  for (const auto& kv : attrs.strings) out[kv.first] = kv.second;
  return out;
}

json branch_to_json(const Branch& branch) {
  json nodes = json::array();
  for (const Node& node : branch.nodes)
    nodes.push_back({{"op", node.op},
                     {"inputs", node.inputs},
                     {"output", node.output},
                     {"params", node.params},
                     {"attrs", attrs_to_json(node.attrs)}});
  json costs = json::parse(branch.costs_json, nullptr, false);
  if (costs.is_discarded() || !costs.is_object()) costs = json::object();
  return {{"name", branch.name},
          {"input", branch.input},
          {"output", branch.output},
          {"nodes", nodes},
          {"costs", costs}};
}

// nlohmann converts a floating-point JSON number to an integer or float with a plain cast, which
// is undefined behaviour out of range; numeric catalog fields are therefore checked first.
struct CatalogError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

uint64_t get_u64(const json& j, const std::string& what) {
  if (!j.is_number_unsigned())
    throw CatalogError(what + " must be a non-negative integer, got " + j.dump());
  return j.get<uint64_t>();
}

Shape get_shape(const json& j, const std::string& what) {
  if (!j.is_array()) throw CatalogError(what + " must be a list of integers");
  Shape shape;
  for (const json& dim : j) {
    if (!dim.is_number_integer()) throw CatalogError(what + " must be a list of integers");
    shape.push_back(dim.get<int64_t>());
  }
  return shape;
}

std::vector<float> get_floats(const json& j, const std::string& what) {
  if (!j.is_array()) throw CatalogError(what + " must be a list of numbers");
  std::vector<float> values;
  for (const json& v : j) {
    if (!v.is_number()) throw CatalogError(what + " must be a list of numbers");
    const double d = v.get<double>();
    if (!(std::fabs(d) <= std::numeric_limits<float>::max()))
      throw CatalogError(what + " value out of float range");
    values.push_back(static_cast<float>(d));
  }
  return values;
}

Status format_error(const std::string& message) {
  return error_status(ErrorCode::kFormat, "catalog.json: " + message);
}

// Parses one branch; json type errors are caught by the caller and reported as format errors.
Status branch_from_json(const json& j, Branch* branch) {
  if (!j.is_object()) return format_error("branch entry is not an object");
  branch->name = j.at("name").get<std::string>();
  branch->input = j.at("input").get<std::string>();
  branch->output = j.at("output").get<std::string>();
  if (j.contains("costs")) {
    if (!j["costs"].is_object()) return format_error("branch costs must be an object");
    branch->costs_json = j["costs"].dump();
  }
  for (const json& jn : j.at("nodes")) {
    Node node;
    node.op = jn.at("op").get<std::string>();
    node.inputs = jn.at("inputs").get<std::vector<std::string>>();
    node.output = jn.at("output").get<std::string>();
    if (jn.contains("params")) node.params = jn["params"].get<std::map<std::string, std::string>>();
    if (jn.contains("attrs")) {
      for (const auto& item : jn["attrs"].items()) {
        const json& v = item.value();
        if (v.is_string())
          node.attrs.strings[item.key()] = v.get<std::string>();
        else if (v.is_number())
          node.attrs.numbers[item.key()] = {v.get<double>()};
        else if (v.is_array())
          node.attrs.numbers[item.key()] = v.get<std::vector<double>>();
        else
          return format_error("attr '" + item.key() + "' must be a number, list or string");
      }
    }
    branch->nodes.push_back(std::move(node));
  }
  return ok_status();
}

Status check_input(const BundleInput& input) {
  if (input.shape_nchw.size() != 4 || shape_elements(input.shape_nchw) <= 0)
    return error_status(ErrorCode::kFormat, "input shape must be NCHW with positive dims, got " +
                                                shape_string(input.shape_nchw));
  const size_t channels = static_cast<size_t>(input.shape_nchw[1]);
  if ((!input.mean.empty() && input.mean.size() != channels) ||
      (!input.std.empty() && input.std.size() != channels))
    return error_status(ErrorCode::kFormat, "input mean/std need one value per channel");
  for (float s : input.std)
    if (!(s != 0.0f) || !std::isfinite(s))
      return error_status(ErrorCode::kFormat, "input std must be finite and non-zero");
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

Status read_file(const fs::path& path, std::string* text) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return error_status(ErrorCode::kIo, "cannot stat " + path.string() + ": " + ec.message());
  if (size > kMaxCatalogBytes) return error_status(ErrorCode::kFormat, "catalog.json too large");
  std::ifstream in(path, std::ios::binary);
  if (!in) return error_status(ErrorCode::kIo, "cannot open " + path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *text = buffer.str();
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

  const fs::path target = fs::path(path);
  const fs::path temp = target.string() + ".tmp." + std::to_string(::getpid());
  const fs::path old = target.string() + ".old." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(temp, ec);
  if (!fs::create_directories(temp, ec) || ec)
    return error_status(ErrorCode::kIo, "cannot create " + temp.string() + ": " + ec.message());
  auto write_file = [](const fs::path& file, const void* data, size_t bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
    out.flush();
    return static_cast<bool>(out);
  };
  if (!write_file(temp / "weights.bin", weights.data(), weights.size()) ||
      !write_file(temp / "catalog.json", catalog_text.data(), catalog_text.size())) {
    fs::remove_all(temp, ec);
    return error_status(ErrorCode::kIo, "cannot write into " + temp.string());
  }
  // rename() cannot replace a non-empty directory, so an existing bundle is moved aside first.
  const bool replacing = fs::exists(target, ec);
  if (replacing) fs::rename(target, old, ec);
  if (!ec) fs::rename(temp, target, ec);
  if (ec) {
    if (replacing && !fs::exists(target)) fs::rename(old, target, ec);
    fs::remove_all(temp, ec);
    return error_status(ErrorCode::kIo, "cannot move bundle into " + target.string());
  }
  if (replacing) fs::remove_all(old, ec);
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
  const int fd = ::open(weights_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return error_status(ErrorCode::kIo, "cannot open " + weights_path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return error_status(ErrorCode::kIo, "cannot stat " + weights_path);
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < kWeightsHeaderBytes) {
    ::close(fd);
    return error_status(ErrorCode::kFormat, "weights.bin truncated: " + std::to_string(size) +
                                                " bytes is smaller than its header");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
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
  const json catalog = json::parse(text, nullptr, false);
  if (catalog.is_discarded() || !catalog.is_object()) return format_error("not a JSON object");
  try {
    if (!catalog.contains("schema_version") || !catalog["schema_version"].is_number_integer())
      return format_error("missing integer schema_version");
    const int64_t version = catalog["schema_version"].get<int64_t>();
    if (version < kOldestBundleSchemaVersion || version > kBundleSchemaVersion)
      return error_status(ErrorCode::kSchemaVersion,
                          "catalog.json schema_version " + std::to_string(version) +
                              " is not supported (expected " +
                              std::to_string(kOldestBundleSchemaVersion) + " to " +
                              std::to_string(kBundleSchemaVersion) + ")");
    model_name_ = catalog.at("model").get<std::string>();
    const json& input = catalog.at("input");
    input_.shape_nchw = get_shape(input.at("shape"), "input shape");
    if (input.contains("mean")) input_.mean = get_floats(input["mean"], "input mean");
    if (input.contains("std")) input_.std = get_floats(input["std"], "input std");
    s = check_input(input_);
    if (!s.ok()) return s;
    classes_ = catalog.value("classes", std::vector<std::string>{});

    const json& tensors = catalog.at("tensors");
    if (!tensors.is_array()) return format_error("tensors must be an array");
    if (tensors.size() != header.tensor_count)
      return format_error("tensor count " + std::to_string(tensors.size()) +
                          " differs from weights.bin header (" +
                          std::to_string(header.tensor_count) + ")");
    for (const json& jt : tensors) {
      const std::string name = jt.at("name").get<std::string>();
      const std::string where = "tensor '" + name + "': ";
      if (name.empty() || constants_.count(name)) return format_error(where + "empty or duplicate");
      ConstTensor t;
      if (!parse_dtype(jt.at("dtype").get<std::string>(), &t.dtype))
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
