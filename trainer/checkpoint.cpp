#include "trainer/checkpoint.h"

#include <hdf5.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <sstream>

#include "base/durable_file.h"
#include "datasets/hdf5_handle.h"
#include "trainer/checkpoint_digest.h"

namespace adascale::trainer {
namespace {

using namespace checkpoint_digest;

using adascale::H5Handle;

// 2: every dataset carries a `crc32` attribute of its raw bytes and the root an
// `attributes_crc32` over the attributes and the list of datasets (names, types, shapes, crc32s)
constexpr int64_t kFormatVersion = 2;
constexpr const char* kDatasetCrc = "crc32";
constexpr const char* kHeaderCrc = "attributes_crc32";
// no text attribute of ours comes near this; a corrupt size must not become an allocation
constexpr size_t kMaxTextBytes = size_t{64} << 20;

struct Context {
  std::string path;
  uint64_t file_bytes = 0;  // size of the file read (bounds every allocation); 0 when writing
  [[noreturn]] void fail(const std::string& what) const {
    throw CheckpointError("checkpoint '" + path + "': " + what);
  }
  void check(herr_t status, const std::string& what) const {
    if (status < 0) fail(what);
  }
  hid_t check_id(hid_t id, const std::string& what) const {
    if (id < 0) fail(what);
    return id;
  }
};

void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

std::string up_to_nul(const std::string& s) { return s.substr(0, std::strlen(s.c_str())); }

void write_string_attr(const Context& cx, hid_t loc, const char* name, const std::string& value) {
  H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  cx.check(H5Tset_size(type, std::max<size_t>(1, value.size())), "string type");
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(cx.check_id(H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT),
                            std::string("create attribute ") + name),
                H5Aclose);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  cx.check(H5Awrite(attr, type, padded.data()), std::string("write attribute ") + name);
}

void write_int_attr(const Context& cx, hid_t loc, const char* name,
                    const std::vector<int64_t>& values) {
  const hsize_t n = values.size();
  H5Handle space(n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr), H5Sclose);
  H5Handle attr(
      cx.check_id(H5Acreate2(loc, name, H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT),
                  std::string("create attribute ") + name),
      H5Aclose);
  cx.check(H5Awrite(attr, H5T_NATIVE_INT64, values.data()), std::string("write attribute ") + name);
}

void write_crc_attr(const Context& cx, hid_t loc, const char* name, uint32_t crc) {
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(cx.check_id(H5Acreate2(loc, name, H5T_STD_U32LE, space, H5P_DEFAULT, H5P_DEFAULT),
                            std::string("create attribute ") + name),
                H5Aclose);
  cx.check(H5Awrite(attr, H5T_NATIVE_UINT32, &crc), std::string("write attribute ") + name);
}

// the doubles written (an empty vector is stored as one 0)
std::vector<double> stored_floats(const std::vector<double>& values) {
  return values.empty() ? std::vector<double>{0.0} : values;
}

void write_float_attr(const Context& cx, hid_t loc, const char* name,
                      const std::vector<double>& values) {
  std::vector<double> v = stored_floats(values);
  const hsize_t n = v.size();
  H5Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  H5Handle attr(
      cx.check_id(H5Acreate2(loc, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT),
                  std::string("create attribute ") + name),
      H5Aclose);
  cx.check(H5Awrite(attr, H5T_NATIVE_DOUBLE, v.data()), std::string("write attribute ") + name);
}

hid_t open_attr(const Context& cx, hid_t loc, const char* name) {
  if (H5Aexists(loc, name) <= 0) cx.fail(std::string("missing attribute '") + name + "'");
  return cx.check_id(H5Aopen(loc, name, H5P_DEFAULT), std::string("attribute ") + name);
}

// how many values an attribute holds: a scalar or a vector of at most 2^20, checked before
// anything is allocated for it
size_t attr_values(const Context& cx, hid_t attr, const char* name) {
  H5Handle space(H5Aget_space(attr), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  if (rank < 0 || rank > 1 || n < 0 || n > (1 << 20))
    cx.fail(std::string("attribute '") + name + "' has a bad size");
  return static_cast<size_t>(n);
}

std::vector<double> read_float_attr(const Context& cx, hid_t loc, const char* name) {
  H5Handle attr(open_attr(cx, loc, name), H5Aclose);
  const size_t n = attr_values(cx, attr, name);
  std::vector<double> out(n);
  cx.check(H5Aread(attr, H5T_NATIVE_DOUBLE, out.data()), std::string("read attribute ") + name);
  return out;
}

std::vector<int64_t> read_int_attr(const Context& cx, hid_t loc, const char* name) {
  H5Handle attr(open_attr(cx, loc, name), H5Aclose);
  const size_t n = attr_values(cx, attr, name);
  std::vector<int64_t> out(n);
  cx.check(H5Aread(attr, H5T_NATIVE_INT64, out.data()), std::string("read attribute ") + name);
  return out;
}

uint32_t read_crc_attr(const Context& cx, hid_t loc, const char* name, const std::string& owner) {
  if (H5Aexists(loc, name) <= 0) cx.fail(owner + " has no checksum (attribute '" + name + "')");
  H5Handle attr(open_attr(cx, loc, name), H5Aclose);
  const size_t n = attr_values(cx, attr, name);
  H5Handle type(H5Aget_type(attr), H5Tclose);
  if (n != 1 || H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) != 4)
    cx.fail(owner + " has a malformed checksum attribute '" + name + "'");
  uint32_t crc = 0;
  cx.check(H5Aread(attr, H5T_NATIVE_UINT32, &crc), std::string("read attribute ") + name);
  return crc;
}

std::string read_string_attr(const Context& cx, hid_t loc, const char* name) {
  H5Handle attr(open_attr(cx, loc, name), H5Aclose);
  const size_t n = attr_values(cx, attr, name);
  H5Handle type(H5Aget_type(attr), H5Tclose);
  if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) != 0)
    cx.fail(std::string("attribute '") + name + "' is not fixed-length text");
  const size_t size = H5Tget_size(type);
  const hsize_t stored = H5Aget_storage_size(attr);
  if (n != 1 || size == 0 || size > kMaxTextBytes || size > cx.file_bytes || stored != size)
    cx.fail(std::string("attribute '") + name + "' claims " + std::to_string(size) +
            " bytes of text, " + std::to_string(stored) + " stored");
  std::string out(size, '\0');
  H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  cx.check(H5Tset_size(mem, size), std::string("attribute ") + name);
  cx.check(H5Aread(attr, mem, out.data()), std::string("read attribute ") + name);
  return up_to_nul(out);
}

// writes one dataset with the crc32 of its bytes and records it for the root checksum
void write_dataset(const Context& cx, hid_t group, const std::string& group_name,
                   const std::string& name, hid_t type, char type_code,
                   const std::vector<hsize_t>& dims, const void* data, size_t bytes,
                   Manifest& manifest) {
  H5Handle space(dims.empty()
                     ? H5Screate(H5S_SCALAR)
                     : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                 H5Sclose);
  H5Handle ds(cx.check_id(H5Dcreate2(group, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT,
                                     H5P_DEFAULT),
                          "create dataset " + name),
              H5Dclose);
  cx.check(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "write dataset " + name);
  const uint32_t crc = crc32_of(data, bytes);
  write_crc_attr(cx, ds, kDatasetCrc, crc);
  manifest[group_name + "/" + name] = {type_code, {dims.begin(), dims.end()}, crc};
}

// A dataset opened for reading: its shape, checked against what the file stores before any
// allocation (a corrupt or forged header must not size a buffer), then its bytes, checked
// against its crc32.
struct DatasetReader {
  const Context& cx;
  int64_t version;
  std::string path;  // "model/fc.weight"
  H5Handle ds;
  std::vector<hsize_t> dims;
  size_t count = 0;  // values
  size_t bytes = 0;
  H5T_class_t type_class = H5T_NO_CLASS;
  size_t type_size = 0;

  DatasetReader(const Context& c, int64_t v, hid_t loc, const std::string& name,
                const std::string& group)
      : cx(c),
        version(v),
        path(group.empty() ? name : group + "/" + name),
        ds(c.check_id(H5Dopen2(loc, name.c_str(), H5P_DEFAULT),
                      "cannot open dataset '" + path + "'"),
           H5Dclose) {
    H5Handle space(H5Dget_space(ds), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space);
    if (rank < 0 || rank > 8) fail("has a bad rank");
    dims.resize(static_cast<size_t>(rank));
    if (rank > 0 && H5Sget_simple_extent_dims(space, dims.data(), nullptr) != rank)
      fail("has unreadable dimensions");
    H5Handle type(H5Dget_type(ds), H5Tclose);
    type_class = H5Tget_class(type);
    type_size = H5Tget_size(type);
    if (type_size == 0 || type_size > 16) fail("has a bad value type");
    // overflow-checked product of the dimensions and the value size
    uint64_t n = 1;
    bool overflow = false;
    for (auto d : dims)
      overflow |= d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
                  __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n);
    uint64_t b = 0;
    overflow |= __builtin_mul_overflow(n, static_cast<uint64_t>(type_size), &b);
    if (overflow || b > cx.file_bytes)
      fail("claims " + shape() + " values, more than the file holds (" +
           std::to_string(cx.file_bytes) + " bytes)");
    const hsize_t stored = H5Dget_storage_size(ds);
    if (stored != b)
      fail("claims " + shape() + " values (" + std::to_string(b) + " bytes) but stores " +
           std::to_string(stored) + " bytes");
    count = static_cast<size_t>(n);
    bytes = static_cast<size_t>(b);
  }

  [[noreturn]] void fail(const std::string& why) const { cx.fail("dataset '" + path + "' " + why); }
  std::string shape() const {
    std::string s = "[";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
  }
  void expect(H5T_class_t cls, size_t size, const char* what) const {
    if (type_class != cls || type_size != size) fail(std::string("is not ") + what);
  }
  // reads everything into out (count values of mem_type) and checks the checksum
  void read(hid_t mem_type, size_t mem_size, char type_code, void* out, Manifest& manifest) {
    if (mem_size != type_size) fail("has an unexpected value size");
    if (count > 0)
      cx.check(H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out),
               "cannot read dataset '" + path + "'");
    ManifestEntry e{type_code, {dims.begin(), dims.end()}, 0};
    if (version >= 2) {
      e.crc = read_crc_attr(cx, ds, kDatasetCrc, "dataset '" + path + "'");
      if (crc32_of(out, bytes) != e.crc) fail("is corrupt (crc32 mismatch)");
    } else if (H5Aexists(ds, kDatasetCrc) > 0) {
      // checksums came with format 2: a format 1 file holding them has a damaged version
      cx.fail("format_version 1 but dataset '" + path + "' has a checksum (corrupt header?)");
    }
    manifest[path] = e;
  }
};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

std::string join_lines(const std::vector<std::string>& items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) s += (i ? "\n" : "") + items[i];
  return s;
}

// Names are stored one per line: an empty name, or one holding a line break or a NUL, would read
// back as another list (a trailing empty class name would vanish), so the writer refuses them and
// the reader refuses the empty lines that only a damaged file holds.
void check_names(const Context& cx, const std::vector<std::string>& names, const char* what) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i].empty() || names[i].find_first_of(std::string("\n\0", 2)) != std::string::npos)
      cx.fail(std::string(what) + " " + std::to_string(i) +
              " is empty or holds a line break or NUL");
}

std::vector<std::string> group_members(const Context& cx, hid_t group, const std::string& what) {
  H5G_info_t info;
  cx.check(H5Gget_info(group, &info), "group info of '" + what + "'");
  if (info.nlinks > (hsize_t{1} << 20)) cx.fail("group '" + what + "' has a bad member count");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len =
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len <= 0 || len > 65536) cx.fail("cannot list the members of group '" + what + "'");
    std::string name(static_cast<size_t>(len) + 1, '\0');
    if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                           H5P_DEFAULT) != len)
      cx.fail("cannot list the members of group '" + what + "'");
    name.resize(static_cast<size_t>(len));
    names.push_back(name);
  }
  return names;
}

}  // namespace

void write_checkpoint(const Checkpoint& ckpt, const std::string& path) {
  silence_hdf5();
  Context cx{path};
  // the rename below would swap a folder out and delete it
  if (std::filesystem::is_directory(path)) cx.fail("is a directory");
  check_names(cx, ckpt.class_names, "class name");
  check_names(cx, ckpt.metric_columns, "metric column");
  std::string error;
  const bool written = base::write_path_atomic(
      path,
      [&](const std::string& tmp) {
        H5Handle file(cx.check_id(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                                  "cannot create " + tmp),
                      H5Fclose);
        {
          Header h;
          h.format_version = {kFormatVersion};
          h.epoch = {ckpt.epoch};
          h.config = up_to_nul(ckpt.config_ini);
          h.architecture = up_to_nul(ckpt.architecture);
          h.spec = up_to_nul(ckpt.spec);
          h.lineage = up_to_nul(ckpt.lineage);
          h.input_shape = ckpt.input_shape;
          h.class_names = up_to_nul(join_lines(ckpt.class_names));
          h.normalize_mean =
              stored_floats({ckpt.normalize_mean.begin(), ckpt.normalize_mean.end()});
          h.normalize_std = stored_floats({ckpt.normalize_std.begin(), ckpt.normalize_std.end()});
          h.test_metrics = {ckpt.test_accuracy, ckpt.test_loss};
          h.columns = up_to_nul(join_lines(ckpt.metric_columns));

          write_int_attr(cx, file, "format_version", h.format_version);
          write_int_attr(cx, file, "epoch", h.epoch);
          write_string_attr(cx, file, "config", ckpt.config_ini);
          write_string_attr(cx, file, "architecture", ckpt.architecture);
          write_string_attr(cx, file, "spec", ckpt.spec);
          write_string_attr(cx, file, "lineage", ckpt.lineage);
          write_int_attr(cx, file, "input_shape", ckpt.input_shape);
          write_string_attr(cx, file, "class_names", join_lines(ckpt.class_names));
          write_float_attr(cx, file, "normalize_mean", h.normalize_mean);
          write_float_attr(cx, file, "normalize_std", h.normalize_std);
          write_float_attr(cx, file, "test_metrics", h.test_metrics);

          Manifest manifest;
          H5Handle model(
              cx.check_id(H5Gcreate2(file, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                          "create group model"),
              H5Gclose);
          for (const auto& [name, tensor] : ckpt.tensors) {
            auto t = tensor.detach().to(torch::kCPU).contiguous();
            std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
            const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
            if (t.scalar_type() == torch::kFloat32) {
              write_dataset(cx, model, "model", name, H5T_NATIVE_FLOAT, 'f', dims,
                            t.data_ptr<float>(), bytes, manifest);
            } else if (t.scalar_type() == torch::kInt64) {
              write_dataset(cx, model, "model", name, H5T_NATIVE_INT64, 'i', dims,
                            t.data_ptr<int64_t>(), bytes, manifest);
            } else {
              cx.fail("tensor '" + name + "' has unsupported dtype " +
                      std::string(toString(t.scalar_type())));
            }
          }
          if (!ckpt.optimizer_archive.empty()) {
            H5Handle opt(
                cx.check_id(H5Gcreate2(file, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                            "create group optimizer"),
                H5Gclose);
            write_dataset(cx, opt, "optimizer", "archive", H5T_NATIVE_UINT8, 'u',
                          {ckpt.optimizer_archive.size()}, ckpt.optimizer_archive.data(),
                          ckpt.optimizer_archive.size(), manifest);
          }
          H5Handle metrics(
              cx.check_id(H5Gcreate2(file, "metrics", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                          "create group metrics"),
              H5Gclose);
          const size_t cols = ckpt.metric_columns.size();
          std::vector<double> flat;
          // the reader refuses rows without columns (their count would be unbounded)
          if (cols == 0 && !ckpt.metrics.empty()) cx.fail("metrics rows without metric columns");
          for (const auto& row : ckpt.metrics) {
            if (row.size() != cols)
              cx.fail("metrics row has " + std::to_string(row.size()) + " values, expected " +
                      std::to_string(cols));
            flat.insert(flat.end(), row.begin(), row.end());
          }
          if (!ckpt.metrics.empty()) {
            write_dataset(cx, metrics, "metrics", "history", H5T_NATIVE_DOUBLE, 'd',
                          {ckpt.metrics.size(), cols}, flat.data(), flat.size() * sizeof(double),
                          manifest);
          }
          write_string_attr(cx, metrics, "columns", join_lines(ckpt.metric_columns));
          write_crc_attr(cx, file, kHeaderCrc, h.crc(manifest));
        }
        // every object above is closed, so this really closes (and flushes) the file
        if (!file.close()) cx.fail("cannot close " + tmp);
      },
      &error);
  if (!written) cx.fail(error);
}

Checkpoint read_checkpoint(const std::string& path) {
  silence_hdf5();
  Context cx{path};
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) cx.fail("no such file");
  if (!std::filesystem::is_regular_file(path, ec)) cx.fail("not a regular file");
  cx.file_bytes = std::filesystem::file_size(path, ec);
  if (ec) cx.fail("cannot read its size: " + ec.message());
  if (H5Fis_hdf5(path.c_str()) <= 0) cx.fail("not an HDF5 file (corrupt or truncated?)");
  H5Handle file(cx.check_id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT),
                            "cannot open (corrupt or truncated?)"),
                H5Fclose);
  Checkpoint ck;
  Header h;
  Manifest manifest;
  h.format_version = read_int_attr(cx, file, "format_version");
  if (h.format_version.size() != 1) cx.fail("attribute format_version must hold 1 value");
  const int64_t version = h.format_version[0];
  if (version != 1 && version != kFormatVersion)
    cx.fail("unsupported format_version " + std::to_string(version));
  ck.format_version = version;
  if (version == 1) {
    if (H5Aexists(file, kHeaderCrc) > 0)
      cx.fail("format_version 1 but the file has checksums (corrupt header?)");
    // files of format 1 predate checksums: still readable, unverified
    std::cerr << "warning: checkpoint '" << path
              << "' has no checksums (format_version 1); its contents are not verified "
                 "(any write rewrites it in format "
              << kFormatVersion << ")\n";
  }
  h.epoch = read_int_attr(cx, file, "epoch");
  if (h.epoch.size() != 1) cx.fail("attribute epoch must hold 1 value");
  ck.epoch = h.epoch[0];
  ck.config_ini = h.config = read_string_attr(cx, file, "config");
  ck.architecture = h.architecture = read_string_attr(cx, file, "architecture");
  if (version >= 2 || H5Aexists(file, "spec") > 0)
    ck.spec = h.spec = read_string_attr(cx, file, "spec");
  if (version >= 2 || H5Aexists(file, "lineage") > 0)
    ck.lineage = h.lineage = read_string_attr(cx, file, "lineage");
  ck.input_shape = h.input_shape = read_int_attr(cx, file, "input_shape");
  h.class_names = read_string_attr(cx, file, "class_names");
  ck.class_names = split_lines(h.class_names);
  check_names(cx, ck.class_names, "class name");
  h.normalize_mean = read_float_attr(cx, file, "normalize_mean");
  h.normalize_std = read_float_attr(cx, file, "normalize_std");
  // the same bounds as the data readers (sides, channels) and the runtime's bundle input: a
  // model built from a damaged shape, or inputs divided by a zero std, would fail far from here
  if (ck.input_shape.size() != 3 || ck.input_shape[0] < 1 || ck.input_shape[0] > 64 ||
      ck.input_shape[1] < 1 || ck.input_shape[1] > 32768 || ck.input_shape[2] < 1 ||
      ck.input_shape[2] > 32768)
    cx.fail("attribute input_shape must be [C, H, W] with C in [1, 64], H and W in [1, 32768]");
  for (double v : h.normalize_mean)
    if (!(std::fabs(v) <= 1e6)) cx.fail("attribute normalize_mean holds " + std::to_string(v));
  for (double v : h.normalize_std)
    if (!(v >= 1e-6 && v <= 1e6)) cx.fail("attribute normalize_std holds " + std::to_string(v));
  for (double v : h.normalize_mean) ck.normalize_mean.push_back(float(v));
  for (double v : h.normalize_std) ck.normalize_std.push_back(float(v));
  if (ck.normalize_mean.size() != size_t(ck.input_shape[0]) ||
      ck.normalize_std.size() != size_t(ck.input_shape[0]))
    cx.fail("input_shape and normalization attributes disagree");
  h.test_metrics = read_float_attr(cx, file, "test_metrics");
  if (h.test_metrics.size() != 2) cx.fail("attribute test_metrics must hold 2 values");
  ck.test_accuracy = h.test_metrics[0];
  ck.test_loss = h.test_metrics[1];

  if (H5Lexists(file, "model", H5P_DEFAULT) <= 0) cx.fail("missing group 'model'");
  H5Handle model(cx.check_id(H5Gopen2(file, "model", H5P_DEFAULT), "open group model"), H5Gclose);
  for (const auto& name : group_members(cx, model, "model")) {
    DatasetReader ds(cx, version, model, name, "model");
    std::vector<int64_t> sizes(ds.dims.begin(), ds.dims.end());
    torch::Tensor t;
    if (ds.type_class == H5T_FLOAT) {
      ds.expect(H5T_FLOAT, 4, "float32");
      t = torch::empty(sizes, torch::kFloat32);
      ds.read(H5T_NATIVE_FLOAT, 4, 'f', t.data_ptr<float>(), manifest);
    } else if (ds.type_class == H5T_INTEGER) {
      ds.expect(H5T_INTEGER, 8, "int64");
      t = torch::empty(sizes, torch::kInt64);
      ds.read(H5T_NATIVE_INT64, 8, 'i', t.data_ptr<int64_t>(), manifest);
    } else {
      ds.fail("has an unsupported type");
    }
    ck.tensors.emplace(name, t);
  }
  if (H5Lexists(file, "optimizer", H5P_DEFAULT) > 0) {
    H5Handle opt(cx.check_id(H5Gopen2(file, "optimizer", H5P_DEFAULT), "open group optimizer"),
                 H5Gclose);
    DatasetReader ds(cx, version, opt, "archive", "optimizer");
    ds.expect(H5T_INTEGER, 1, "bytes");
    if (ds.dims.size() != 1) ds.fail("is not a byte string");
    ck.optimizer_archive.resize(ds.count);
    ds.read(H5T_NATIVE_UINT8, 1, 'u', ck.optimizer_archive.data(), manifest);
  }
  if (H5Lexists(file, "metrics", H5P_DEFAULT) > 0) {
    H5Handle metrics(cx.check_id(H5Gopen2(file, "metrics", H5P_DEFAULT), "open group metrics"),
                     H5Gclose);
    h.columns = read_string_attr(cx, metrics, "columns");
    ck.metric_columns = split_lines(h.columns);
    check_names(cx, ck.metric_columns, "metric column");
    if (H5Lexists(metrics, "history", H5P_DEFAULT) > 0) {
      DatasetReader ds(cx, version, metrics, "history", "metrics");
      ds.expect(H5T_FLOAT, 8, "float64");
      if (ds.dims.size() != 2) ds.fail("is not a table");
      if (ds.dims[1] != ck.metric_columns.size())
        ds.fail("has " + std::to_string(ds.dims[1]) + " columns, attribute 'columns' names " +
                std::to_string(ck.metric_columns.size()));
      // rows of no columns store no bytes, so nothing in the file bounds their number
      if (ds.dims[1] == 0 && ds.dims[0] > 0)
        ds.fail("has " + std::to_string(ds.dims[0]) + " rows but no columns");
      std::vector<double> flat(ds.count);
      ds.read(H5T_NATIVE_DOUBLE, 8, 'd', flat.data(), manifest);
      const size_t cols = static_cast<size_t>(ds.dims[1]);
      for (size_t r = 0; r < static_cast<size_t>(ds.dims[0]); ++r)
        ck.metrics.emplace_back(flat.begin() + static_cast<ptrdiff_t>(r * cols),
                                flat.begin() + static_cast<ptrdiff_t>((r + 1) * cols));
    }
  } else if (version >= 2) {
    cx.fail("missing group 'metrics'");
  }
  if (version >= 2 && read_crc_attr(cx, file, kHeaderCrc, "the file") != h.crc(manifest))
    cx.fail("attributes are corrupt (crc32 mismatch)");
  return ck;
}

}  // namespace adascale::trainer
