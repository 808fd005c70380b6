#include "trainer/checkpoint.h"

#include <hdf5.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "datasets/hdf5_handle.h"

namespace adascale::trainer {
namespace {

using adascale::H5Handle;

struct Context {
  std::string path;
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

void write_float_attr(const Context& cx, hid_t loc, const char* name,
                      const std::vector<double>& values) {
  const hsize_t n = std::max<size_t>(1, values.size());
  std::vector<double> v = values.empty() ? std::vector<double>{0.0} : values;
  H5Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  H5Handle attr(
      cx.check_id(H5Acreate2(loc, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT),
                  std::string("create attribute ") + name),
      H5Aclose);
  cx.check(H5Awrite(attr, H5T_NATIVE_DOUBLE, v.data()), std::string("write attribute ") + name);
}

std::vector<double> read_float_attr(const Context& cx, hid_t loc, const char* name) {
  if (H5Aexists(loc, name) <= 0) cx.fail(std::string("missing attribute '") + name + "'");
  H5Handle attr(cx.check_id(H5Aopen(loc, name, H5P_DEFAULT), name), H5Aclose);
  H5Handle space(H5Aget_space(attr), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  if (n < 0 || n > (1 << 20)) cx.fail(std::string("attribute '") + name + "' has a bad size");
  std::vector<double> out(static_cast<size_t>(n));
  cx.check(H5Aread(attr, H5T_NATIVE_DOUBLE, out.data()), name);
  return out;
}

std::string read_string_attr(const Context& cx, hid_t loc, const char* name) {
  if (H5Aexists(loc, name) <= 0) cx.fail(std::string("missing attribute '") + name + "'");
  H5Handle attr(cx.check_id(H5Aopen(loc, name, H5P_DEFAULT), name), H5Aclose);
  H5Handle type(H5Aget_type(attr), H5Tclose);
  if (H5Tget_class(type) != H5T_STRING)
    cx.fail(std::string("attribute '") + name + "' is not text");
  const size_t size = H5Tget_size(type);
  std::string out(size, '\0');
  H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem, size);
  cx.check(H5Aread(attr, mem, out.data()), name);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::vector<int64_t> read_int_attr(const Context& cx, hid_t loc, const char* name) {
  if (H5Aexists(loc, name) <= 0) cx.fail(std::string("missing attribute '") + name + "'");
  H5Handle attr(cx.check_id(H5Aopen(loc, name, H5P_DEFAULT), name), H5Aclose);
  H5Handle space(H5Aget_space(attr), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  if (n < 0 || n > (1 << 20)) cx.fail(std::string("attribute '") + name + "' has a bad size");
  std::vector<int64_t> out(static_cast<size_t>(n));
  cx.check(H5Aread(attr, H5T_NATIVE_INT64, out.data()), name);
  return out;
}

void write_dataset(const Context& cx, hid_t group, const std::string& name, hid_t type,
                   const std::vector<hsize_t>& dims, const void* data) {
  H5Handle space(dims.empty()
                     ? H5Screate(H5S_SCALAR)
                     : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                 H5Sclose);
  H5Handle ds(cx.check_id(H5Dcreate2(group, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT,
                                     H5P_DEFAULT),
                          "create dataset " + name),
              H5Dclose);
  cx.check(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "write dataset " + name);
}

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

std::vector<std::string> group_members(const Context& cx, hid_t group) {
  H5G_info_t info;
  cx.check(H5Gget_info(group, &info), "group info");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len =
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) cx.fail("cannot list group members");
    std::string name(static_cast<size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                       H5P_DEFAULT);
    name.resize(static_cast<size_t>(len));
    names.push_back(name);
  }
  return names;
}

}  // namespace

void write_checkpoint(const Checkpoint& ckpt, const std::string& path) {
  silence_hdf5();
  const std::string tmp = path + ".tmp";
  Context cx{path};
  try {
    H5Handle file(cx.check_id(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                              "cannot create " + tmp),
                  H5Fclose);
    write_int_attr(cx, file, "format_version", {ckpt.format_version});
    write_int_attr(cx, file, "epoch", {ckpt.epoch});
    write_string_attr(cx, file, "config", ckpt.config_ini);
    write_string_attr(cx, file, "architecture", ckpt.architecture);
    write_string_attr(cx, file, "spec", ckpt.spec);
    write_string_attr(cx, file, "lineage", ckpt.lineage);
    write_int_attr(cx, file, "input_shape", ckpt.input_shape);
    write_string_attr(cx, file, "class_names", join_lines(ckpt.class_names));
    write_float_attr(cx, file, "normalize_mean",
                     {ckpt.normalize_mean.begin(), ckpt.normalize_mean.end()});
    write_float_attr(cx, file, "normalize_std",
                     {ckpt.normalize_std.begin(), ckpt.normalize_std.end()});
    write_float_attr(cx, file, "test_metrics", {ckpt.test_accuracy, ckpt.test_loss});

    H5Handle model(cx.check_id(H5Gcreate2(file, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                               "create group model"),
                   H5Gclose);
    for (const auto& [name, tensor] : ckpt.tensors) {
      auto t = tensor.detach().to(torch::kCPU).contiguous();
      std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
      if (t.scalar_type() == torch::kFloat32) {
        write_dataset(cx, model, name, H5T_NATIVE_FLOAT, dims, t.data_ptr<float>());
      } else if (t.scalar_type() == torch::kInt64) {
        write_dataset(cx, model, name, H5T_NATIVE_INT64, dims, t.data_ptr<int64_t>());
      } else {
        cx.fail("tensor '" + name + "' has unsupported dtype " +
                std::string(toString(t.scalar_type())));
      }
    }
    if (!ckpt.optimizer_archive.empty()) {
      H5Handle opt(cx.check_id(H5Gcreate2(file, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                               "create group optimizer"),
                   H5Gclose);
      write_dataset(cx, opt, "archive", H5T_NATIVE_UINT8, {ckpt.optimizer_archive.size()},
                    ckpt.optimizer_archive.data());
    }
    H5Handle metrics(cx.check_id(H5Gcreate2(file, "metrics", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                                 "create group metrics"),
                     H5Gclose);
    const size_t cols = ckpt.metric_columns.size();
    std::vector<double> flat;
    for (const auto& row : ckpt.metrics) {
      if (row.size() != cols)
        cx.fail("metrics row has " + std::to_string(row.size()) + " values, expected " +
                std::to_string(cols));
      flat.insert(flat.end(), row.begin(), row.end());
    }
    if (!ckpt.metrics.empty()) {
      write_dataset(cx, metrics, "history", H5T_NATIVE_DOUBLE, {ckpt.metrics.size(), cols},
                    flat.data());
    }
    write_string_attr(cx, metrics, "columns", join_lines(ckpt.metric_columns));
    cx.check(H5Fflush(file, H5F_SCOPE_GLOBAL), "flush");
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    cx.fail("cannot rename " + tmp + ": " + ec.message());
  }
}

Checkpoint read_checkpoint(const std::string& path) {
  silence_hdf5();
  Context cx{path};
  if (!std::filesystem::exists(path)) cx.fail("no such file");
  if (H5Fis_hdf5(path.c_str()) <= 0) cx.fail("not an HDF5 file (corrupt or truncated?)");
  H5Handle file(cx.check_id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT),
                            "cannot open (corrupt or truncated?)"),
                H5Fclose);
  Checkpoint ck;
  ck.format_version = read_int_attr(cx, file, "format_version").at(0);
  if (ck.format_version != 1)
    cx.fail("unsupported format_version " + std::to_string(ck.format_version));
  ck.epoch = read_int_attr(cx, file, "epoch").at(0);
  ck.config_ini = read_string_attr(cx, file, "config");
  ck.architecture = read_string_attr(cx, file, "architecture");
  if (H5Aexists(file, "spec") > 0) ck.spec = read_string_attr(cx, file, "spec");
  if (H5Aexists(file, "lineage") > 0) ck.lineage = read_string_attr(cx, file, "lineage");
  ck.input_shape = read_int_attr(cx, file, "input_shape");
  ck.class_names = split_lines(read_string_attr(cx, file, "class_names"));
  for (double v : read_float_attr(cx, file, "normalize_mean"))
    ck.normalize_mean.push_back(float(v));
  for (double v : read_float_attr(cx, file, "normalize_std")) ck.normalize_std.push_back(float(v));
  if (ck.input_shape.size() != 3 || ck.normalize_mean.size() != size_t(ck.input_shape[0]) ||
      ck.normalize_std.size() != size_t(ck.input_shape[0]))
    cx.fail("input_shape and normalization attributes disagree");
  auto test = read_float_attr(cx, file, "test_metrics");
  if (test.size() != 2) cx.fail("attribute test_metrics must hold 2 values");
  ck.test_accuracy = test[0];
  ck.test_loss = test[1];

  if (H5Lexists(file, "model", H5P_DEFAULT) <= 0) cx.fail("missing group 'model'");
  H5Handle model(cx.check_id(H5Gopen2(file, "model", H5P_DEFAULT), "open group model"), H5Gclose);
  for (const auto& name : group_members(cx, model)) {
    H5Handle ds(cx.check_id(H5Dopen2(model, name.c_str(), H5P_DEFAULT), "open dataset " + name),
                H5Dclose);
    H5Handle space(H5Dget_space(ds), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space);
    if (rank < 0 || rank > 8) cx.fail("dataset " + name + " has a bad rank");
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    std::vector<int64_t> sizes(dims.begin(), dims.end());
    H5Handle type(H5Dget_type(ds), H5Tclose);
    torch::Tensor t;
    if (H5Tget_class(type) == H5T_FLOAT) {
      t = torch::empty(sizes, torch::kFloat32);
      cx.check(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr<float>()),
               "read dataset " + name);
    } else if (H5Tget_class(type) == H5T_INTEGER) {
      t = torch::empty(sizes, torch::kInt64);
      cx.check(H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr<int64_t>()),
               "read dataset " + name);
    } else {
      cx.fail("dataset " + name + " has an unsupported type");
    }
    ck.tensors.emplace(name, t);
  }
  if (H5Lexists(file, "optimizer", H5P_DEFAULT) > 0) {
    H5Handle ds(
        cx.check_id(H5Dopen2(file, "optimizer/archive", H5P_DEFAULT), "open optimizer/archive"),
        H5Dclose);
    H5Handle space(H5Dget_space(ds), H5Sclose);
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    if (n < 0) cx.fail("optimizer/archive has a bad size");
    ck.optimizer_archive.resize(static_cast<size_t>(n));
    cx.check(
        H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, ck.optimizer_archive.data()),
        "read optimizer/archive");
  }
  if (H5Lexists(file, "metrics", H5P_DEFAULT) > 0) {
    H5Handle metrics(cx.check_id(H5Gopen2(file, "metrics", H5P_DEFAULT), "open group metrics"),
                     H5Gclose);
    ck.metric_columns = split_lines(read_string_attr(cx, metrics, "columns"));
    if (H5Lexists(metrics, "history", H5P_DEFAULT) > 0) {
      H5Handle ds(cx.check_id(H5Dopen2(metrics, "history", H5P_DEFAULT), "open metrics/history"),
                  H5Dclose);
      H5Handle space(H5Dget_space(ds), H5Sclose);
      hsize_t dims[2] = {0, 0};
      if (H5Sget_simple_extent_ndims(space) != 2) cx.fail("metrics/history is not a table");
      H5Sget_simple_extent_dims(space, dims, nullptr);
      if (dims[1] != ck.metric_columns.size()) cx.fail("metrics/history columns disagree");
      std::vector<double> flat(dims[0] * dims[1]);
      cx.check(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, flat.data()),
               "read metrics/history");
      for (hsize_t r = 0; r < dims[0]; ++r)
        ck.metrics.emplace_back(flat.begin() + r * dims[1], flat.begin() + (r + 1) * dims[1]);
    }
  }
  return ck;
}

std::map<std::string, torch::Tensor> module_state(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : module.named_parameters())
    out[p.key()] = p.value().detach().to(torch::kCPU).contiguous().clone();
  for (const auto& b : module.named_buffers())
    out[b.key()] = b.value().detach().to(torch::kCPU).contiguous().clone();
  return out;
}

void load_module_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state,
                       const std::string& origin) {
  torch::NoGradGuard no_grad;
  size_t used = 0;
  auto load = [&](const std::string& name, torch::Tensor& target) {
    auto it = state.find(name);
    if (it == state.end())
      throw CheckpointError(origin + ": no tensor '" + name +
                            "' (checkpoint of another architecture?)");
    if (it->second.sizes() != target.sizes())
      throw CheckpointError(origin + ": tensor '" + name + "' has shape " +
                            c10::str(it->second.sizes()) + ", the model expects " +
                            c10::str(target.sizes()));
    target.copy_(it->second.to(target.dtype()));
    ++used;
  };
  for (auto& p : module.named_parameters()) load(p.key(), p.value());
  for (auto& b : module.named_buffers()) load(b.key(), b.value());
  if (used != state.size())
    throw CheckpointError(origin + ": holds " + std::to_string(state.size() - used) +
                          " tensors the model does not have (checkpoint of another architecture?)");
}

std::string serialize_optimizer(const torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void deserialize_optimizer(torch::optim::Optimizer& optimizer, const std::string& bytes) {
  std::istringstream in(bytes);
  torch::serialize::InputArchive archive;
  archive.load_from(in);
  optimizer.load(archive);
}

}  // namespace adascale::trainer
