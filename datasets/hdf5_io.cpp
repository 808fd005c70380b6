// HDF5 arrays: `images` (uint8, N x H x W x C or N x H x W) and `labels` (integer, N).
#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>

#include "base/durable_file.h"
#include "datasets/dataset.h"
#include "datasets/detail.h"
#include "datasets/hdf5_handle.h"

namespace adascale::data {

namespace {

// the library prints its error stack to stderr by default; we report through DataError instead
void quiet_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split_names(const std::string& joined) {
  std::vector<std::string> names;
  size_t start = 0;
  for (;;) {
    const size_t comma = joined.find(',', start);
    names.push_back(trim(joined.substr(start, comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return names;
}

// integer dataset of the given rank; returns its dims
std::vector<hsize_t> integer_dims(const std::string& path, hid_t dset, const char* name) {
  H5Handle type(H5Dget_type(dset), H5Tclose);
  if (!type.ok() || H5Tget_class(type.get()) != H5T_INTEGER)
    throw DataError(path + ": dataset '" + name + "' is not an integer array");
  H5Handle space(H5Dget_space(dset), H5Sclose);
  const int rank = space.ok() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank < 0) throw DataError(path + ": cannot read the shape of '" + name + "'");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

// the `class_names` attribute: one comma separated string, or an array of strings
// (what h5py writes for a python list); empty when absent
std::vector<std::string> read_class_names(const std::string& path, hid_t labels) {
  if (H5Aexists(labels, "class_names") <= 0) return {};
  H5Handle attr(H5Aopen(labels, "class_names", H5P_DEFAULT), H5Aclose);
  H5Handle type(attr.ok() ? H5Aget_type(attr.get()) : -1, H5Tclose);
  if (!type.ok() || H5Tget_class(type.get()) != H5T_STRING)
    throw DataError(path + ": attribute 'class_names' is not a string");
  H5Handle space(H5Aget_space(attr.get()), H5Sclose);
  const hssize_t count = space.ok() ? H5Sget_simple_extent_npoints(space.get()) : -1;
  if (count < 1) throw DataError(path + ": attribute 'class_names' is empty");
  std::vector<std::string> values;
  if (H5Tis_variable_str(type.get()) > 0) {
    H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    std::vector<char*> ptrs(static_cast<size_t>(count), nullptr);
    const bool ok = H5Aread(attr.get(), mem.get(), ptrs.data()) >= 0;
    for (char* p : ptrs) {
      if (ok) values.emplace_back(p ? p : "");
      if (p) H5free_memory(p);
    }
    if (!ok) throw DataError(path + ": cannot read attribute 'class_names'");
  } else {
    const size_t size = H5Tget_size(type.get());
    H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), size);
    const uint64_t total =
        detail::checked_product(path, "attribute 'class_names' strings x string size",
                                {static_cast<uint64_t>(count), static_cast<uint64_t>(size)});
    std::vector<char> buf(static_cast<size_t>(total));
    if (H5Aread(attr.get(), mem.get(), buf.data()) < 0)
      throw DataError(path + ": cannot read attribute 'class_names'");
    for (hssize_t i = 0; i < count; ++i) {
      const char* s = buf.data() + static_cast<size_t>(i) * size;
      values.emplace_back(s, std::find(s, s + size, '\0'));
    }
  }
  if (values.size() == 1) return split_names(values.front());
  for (auto& v : values) v = trim(v);
  return values;
}

// the validated shape of `images`: N, H, W, C (C = 1 for a rank-3 array) and N * H * W * C
struct Extent {
  std::vector<uint64_t> dims;
  uint64_t elements = 0;
};

// whether the file really holds the `bytes` the extent of `dset` claims: a contiguous or compact
// array must have that much storage, a chunked one (compressed or not) every chunk. A claim the
// file does not back (unwritten or never-allocated storage, read back as fill values) is refused,
// so a tiny file cannot make the reader allocate gigabytes.
void check_stored(const std::string& path, hid_t dset, const char* name,
                  const std::vector<uint64_t>& dims, uint64_t bytes) {
  if (bytes == 0) return;
  H5Handle plist(H5Dget_create_plist(dset), H5Pclose);
  if (!plist.ok()) throw DataError(path + ": cannot read the layout of '" + name + "'");
  const H5D_layout_t layout = H5Pget_layout(plist.get());
  if (H5Pget_external_count(plist.get()) > 0)
    throw DataError(path + ": dataset '" + name + "' keeps its data in external files");
  if (layout == H5D_VIRTUAL)
    throw DataError(path + ": dataset '" + name + "' is a virtual dataset (not supported)");
  const std::string claim = "dataset '" + std::string(name) + "' claims " +
                            detail::join_dims(dims) + " = " + std::to_string(bytes) + " bytes";
  if (layout == H5D_CHUNKED) {
    // unwritten chunks are not stored and read back as fill values: every chunk must be there
    std::vector<hsize_t> chunk(dims.size());
    if (H5Pget_chunk(plist.get(), static_cast<int>(chunk.size()), chunk.data()) !=
        static_cast<int>(chunk.size()))
      throw DataError(path + ": cannot read the chunk shape of '" + name + "'");
    uint64_t expected = 1;  // at most the element count, so it cannot overflow
    for (size_t i = 0; i < dims.size(); ++i)
      expected *= chunk[i] == 0 ? 0 : (dims[i] + chunk[i] - 1) / chunk[i];
    H5Handle space(H5Dget_space(dset), H5Sclose);
    hsize_t stored = 0;
    if (!space.ok() || H5Dget_num_chunks(dset, space.get(), &stored) < 0)
      throw DataError(path + ": cannot count the chunks of '" + name + "'");
    if (stored < expected)
      throw DataError(path + ": " + claim + " but the file stores only " + std::to_string(stored) +
                      " of its " + std::to_string(expected) + " chunks");
    return;
  }
  // contiguous or compact: the storage is the data, uncompressed
  const hsize_t stored = H5Dget_storage_size(dset);
  if (stored < bytes)
    throw DataError(path + ": " + claim + " but the file stores " + std::to_string(stored));
}

// images: N x H x W (x C), 8-bit; H, W, C bounded, the product checked and stored in the file
Extent image_extent(const std::string& path, hid_t images) {
  const std::vector<hsize_t> raw = integer_dims(path, images, "images");
  {
    H5Handle type(H5Dget_type(images), H5Tclose);
    if (H5Tget_size(type.get()) != 1)
      throw DataError(path + ": dataset 'images' must hold 8-bit pixels");
  }
  if (raw.size() != 3 && raw.size() != 4)
    throw DataError(path + ": dataset 'images' has rank " + std::to_string(raw.size()) +
                    " (expected N x H x W or N x H x W x C)");
  Extent e;
  e.dims.assign(raw.begin(), raw.end());
  if (e.dims.size() == 3) e.dims.push_back(1);
  static const char* const kNames[4] = {"N (images)", "H (height)", "W (width)", "C (channels)"};
  for (size_t i = 1; i < 4; ++i) {
    const uint64_t limit = i == 3 ? detail::kMaxChannels : detail::kMaxImageSide;
    if (e.dims[i] == 0)
      throw DataError(path + ": dataset 'images' has an empty image dimension " + kNames[i]);
    if (e.dims[i] > limit)
      throw DataError(path + ": dataset 'images' dimension " + kNames[i] + " is " +
                      std::to_string(e.dims[i]) + " (limit " + std::to_string(limit) + ")");
  }
  const std::vector<uint64_t> file_dims(raw.begin(), raw.end());
  e.elements = detail::checked_product(path, "dataset 'images' dimensions", file_dims);
  check_stored(path, images, "images", file_dims, e.elements);
  return e;
}

// labels: [n] integers, stored in the file
void check_label_extent(const std::string& path, hid_t labels, uint64_t n) {
  const std::vector<hsize_t> ldims = integer_dims(path, labels, "labels");
  if (ldims.size() != 1 || ldims[0] != n)
    throw DataError(path + ": dataset 'labels' does not hold one label per image (" +
                    std::to_string(n) + " images)");
  H5Handle type(H5Dget_type(labels), H5Tclose);
  const size_t size = type.ok() ? H5Tget_size(type.get()) : 0;
  if (size == 0 || size > 8)
    throw DataError(path + ": dataset 'labels' has " + std::to_string(size) +
                    "-byte integers (expected at most 8)");
  check_stored(path, labels, "labels", {n},
               detail::checked_product(path, "dataset 'labels' entries x bytes", {n, size}));
}

// every label in range before anything is sized by one: [0, names) with class names, else
// [0, kMaxUnnamedClasses)
void check_labels(const std::string& path, const std::vector<int64_t>& labels,
                  const std::vector<std::string>& names) {
  for (size_t i = 0; i < labels.size(); ++i) {
    const int64_t v = labels[i];
    if (v < 0)
      throw DataError(path + ": dataset 'labels': label " + std::to_string(v) + " of example " +
                      std::to_string(i) + " is negative");
    if (!names.empty() && v >= static_cast<int64_t>(names.size()))
      throw DataError(path + ": dataset 'labels': label " + std::to_string(v) + " of example " +
                      std::to_string(i) + " is outside the " + std::to_string(names.size()) +
                      " classes of attribute 'class_names'");
    if (names.empty() && v >= kMaxUnnamedClasses)
      throw DataError(path + ": dataset 'labels': label " + std::to_string(v) + " of example " +
                      std::to_string(i) + " exceeds the limit of " +
                      std::to_string(kMaxUnnamedClasses) +
                      " classes for a file without a 'class_names' attribute");
  }
}

}  // namespace

namespace detail {

std::vector<std::string> hdf5_class_names(const std::string& path) {
  quiet_hdf5();
  if (!std::filesystem::is_regular_file(path) || H5Fis_hdf5(path.c_str()) <= 0) return {};
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) return {};
  H5Handle labels(H5Dopen2(file.get(), "labels", H5P_DEFAULT), H5Dclose);
  if (!labels.ok()) return {};
  return read_class_names(path, labels.get());
}

}  // namespace detail

DatasetPtr read_hdf5(const std::string& path) {
  quiet_hdf5();
  if (!std::filesystem::is_regular_file(path)) throw DataError(path + ": cannot open file");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw DataError(path + ": not an HDF5 file");
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) throw DataError(path + ": cannot open HDF5 file");

  // every extent is checked (bounds, overflow, stored in the file) before anything is allocated
  H5Handle images(H5Dopen2(file.get(), "images", H5P_DEFAULT), H5Dclose);
  if (!images.ok()) throw DataError(path + ": no dataset 'images'");
  const Extent extent = image_extent(path, images.get());
  const uint64_t n = extent.dims[0];
  const int64_t h = static_cast<int64_t>(extent.dims[1]);
  const int64_t w = static_cast<int64_t>(extent.dims[2]);
  const int64_t c = static_cast<int64_t>(extent.dims[3]);
  H5Handle labels(H5Dopen2(file.get(), "labels", H5P_DEFAULT), H5Dclose);
  if (!labels.ok()) throw DataError(path + ": no dataset 'labels'");
  check_label_extent(path, labels.get(), n);

  // labels (and their range) before the pixels: the class count must not come from a bad label
  std::vector<int64_t> label_values(static_cast<size_t>(n));
  if (n > 0 && H5Dread(labels.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                       label_values.data()) < 0)
    throw DataError(path + ": cannot read dataset 'labels'");
  std::vector<std::string> names = read_class_names(path, labels.get());
  check_labels(path, label_values, names);
  if (names.empty()) {
    const int64_t max_label =
        n > 0 ? *std::max_element(label_values.begin(), label_values.end()) : 0;
    names = detail::numbered_class_names(std::max<int64_t>(1, max_label + 1));
  }

  const size_t plane = static_cast<size_t>(h * w);
  std::vector<uint8_t> hwc(static_cast<size_t>(extent.elements));
  if (n > 0 &&
      H5Dread(images.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, hwc.data()) < 0)
    throw DataError(path + ": cannot read dataset 'images'");

  std::vector<uint8_t> chw(hwc.size());
  if (c == 1) {
    chw.swap(hwc);  // same layout
  } else {
    for (uint64_t i = 0; i < n; ++i) {
      const uint8_t* src = hwc.data() + static_cast<size_t>(i) * plane * c;
      uint8_t* dst = chw.data() + static_cast<size_t>(i) * plane * c;
      for (size_t k = 0; k < plane; ++k)
        for (int64_t ch = 0; ch < c; ++ch) dst[ch * plane + k] = src[k * c + ch];
    }
  }
  return std::make_shared<InMemoryDataset>(ImageShape{c, h, w}, std::move(chw),
                                           std::move(label_values), std::move(names), path);
}

namespace {

void write_file(const Dataset& set, const std::string& path) {
  const ImageShape s = set.shape();
  const int64_t n = set.size();
  const size_t plane = static_cast<size_t>(s.height * s.width);
  const size_t c = static_cast<size_t>(s.channels);

  H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) throw DataError(path + ": cannot create HDF5 file");

  // images are stored channels-last, the layout numpy/h5py users expect
  std::vector<uint8_t> hwc(static_cast<size_t>(n) * plane * c);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* src = set.pixels(i);
    uint8_t* dst = hwc.data() + static_cast<size_t>(i) * plane * c;
    for (size_t k = 0; k < plane; ++k)
      for (size_t ch = 0; ch < c; ++ch) dst[k * c + ch] = src[ch * plane + k];
  }
  const hsize_t idims[4] = {static_cast<hsize_t>(n), static_cast<hsize_t>(s.height),
                            static_cast<hsize_t>(s.width), static_cast<hsize_t>(s.channels)};
  H5Handle ispace(H5Screate_simple(4, idims, nullptr), H5Sclose);
  H5Handle images(H5Dcreate2(file.get(), "images", H5T_STD_U8LE, ispace.get(), H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
                  H5Dclose);
  if (!images.ok() || (n > 0 && H5Dwrite(images.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL,
                                         H5P_DEFAULT, hwc.data()) < 0))
    throw DataError(path + ": cannot write dataset 'images'");

  std::vector<int64_t> label_values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) label_values[static_cast<size_t>(i)] = set.label(i);
  const hsize_t ldims[1] = {static_cast<hsize_t>(n)};
  H5Handle lspace(H5Screate_simple(1, ldims, nullptr), H5Sclose);
  H5Handle labels(H5Dcreate2(file.get(), "labels", H5T_STD_I64LE, lspace.get(), H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
                  H5Dclose);
  if (!labels.ok() || (n > 0 && H5Dwrite(labels.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL,
                                         H5P_DEFAULT, label_values.data()) < 0))
    throw DataError(path + ": cannot write dataset 'labels'");

  std::string joined;
  for (const std::string& name : set.class_names()) {
    if (name.find(',') != std::string::npos)
      throw DataError(path + ": class name '" + name + "' contains a comma");
    joined += (joined.empty() ? "" : ",") + name;
  }
  H5Handle stype(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(stype.get(), joined.size() + 1);
  H5Tset_strpad(stype.get(), H5T_STR_NULLTERM);
  H5Handle aspace(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(
      H5Acreate2(labels.get(), "class_names", stype.get(), aspace.get(), H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose);
  if (!attr.ok() || H5Awrite(attr.get(), stype.get(), joined.c_str()) < 0)
    throw DataError(path + ": cannot write attribute 'class_names'");

  attr.close();
  labels.close();
  images.close();
  if (!file.close()) throw DataError(path + ": cannot close HDF5 file");
}

}  // namespace

void write_hdf5(const Dataset& set, const std::string& path) {
  quiet_hdf5();
  // a crash or error mid-write never leaves a half-written file at path
  std::string error;
  if (!base::write_path_atomic(
          path, [&](const std::string& temp) { write_file(set, temp); }, &error))
    throw DataError(path + ": " + error);
}

}  // namespace adascale::data
