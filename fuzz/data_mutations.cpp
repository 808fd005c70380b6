// HDF5 inputs for data_fuzz: image sets for read_hdf5 and edits of written checkpoints.
#include "fuzz/data_mutations.h"

#include <hdf5.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "datasets/hdf5_handle.h"

namespace adascale::fuzz {
namespace {

using adascale::H5Handle;

uint64_t pow2(int k) { return uint64_t{1} << k; }

// element types the edits choose from; strings are fixed-size (as the writers use) or variable
enum class Elem { kU8, kI8, kU16, kI16, kU32, kI32, kU64, kI64, kF32, kF64, kFixedStr, kVarStr };
const std::vector<Elem> kAllElems = {Elem::kU8,  Elem::kI8,  Elem::kU16,      Elem::kI16,
                                     Elem::kU32, Elem::kI32, Elem::kU64,      Elem::kI64,
                                     Elem::kF32, Elem::kF64, Elem::kFixedStr, Elem::kVarStr};
const char* const kElemNames[] = {"u8",  "i8",  "u16", "i16", "u32",        "i32",
                                  "u64", "i64", "f32", "f64", "fixed-text", "var-text"};
std::string elem_name(Elem e) { return kElemNames[static_cast<int>(e)]; }

// how a dataset is stored; the last three store less than the extent claims
enum class Layout { kContiguous, kCompact, kChunked, kDeflate, kPartial, kUnwritten, kLate };
const char* const kLayoutNames[] = {"contiguous", "compact",           "chunked",       "deflate",
                                    "one-value",  "unwritten-chunked", "unwritten-late"};
Layout any_layout(Rng& r) { return static_cast<Layout>(r.below(7)); }

// values of one dataset or attribute; `ints`/`reals`/`texts` are cycled to fill the extent
struct Values {
  Elem elem = Elem::kI64;
  std::vector<hsize_t> dims;  // empty: scalar
  bool null_space = false;
  std::vector<int64_t> ints;
  std::vector<double> reals;       // floats use these when present
  std::vector<std::string> texts;  // strings use these when present, else the decimal ints
};

// more values than this are never written: the array is created with no storage (forged)
constexpr uint64_t kMaxWritten = uint64_t{1} << 16;

uint64_t value_count(const Values& v, bool* huge) {
  uint64_t n = 1;
  *huge = false;
  for (hsize_t d : v.dims) *huge |= __builtin_mul_overflow(n, d, &n);
  if (v.null_space) n = 0;
  *huge |= n > kMaxWritten;
  return *huge ? 0 : n;
}

std::string text_of(const Values& v, uint64_t i) {
  if (!v.texts.empty()) return v.texts[i % v.texts.size()];
  return std::to_string(v.ints.empty() ? 0 : v.ints[i % v.ints.size()]);
}

template <typename T>
void append(std::string& out, T x) {
  out.append(reinterpret_cast<const char*>(&x), sizeof x);
}

// `count` values in memory and the types to write them with: numbers are converted by HDF5
// (saturating, as its conversions do), text is stored as given
struct Payload {
  hid_t file_type = -1;  // owned
  hid_t mem_type = -1;   // predefined, or file_type
  std::string bytes;
  std::vector<std::string> texts;
  std::vector<const char*> ptrs;  // variable-length text

  Payload(const Values& v, uint64_t count) {
    static const hid_t kNumeric[] = {H5T_STD_U8LE,   H5T_STD_I8LE,  H5T_STD_U16LE, H5T_STD_I16LE,
                                     H5T_STD_U32LE,  H5T_STD_I32LE, H5T_STD_U64LE, H5T_STD_I64LE,
                                     H5T_IEEE_F32LE, H5T_IEEE_F64LE};
    if (v.elem != Elem::kFixedStr && v.elem != Elem::kVarStr) {
      file_type = H5Tcopy(kNumeric[static_cast<int>(v.elem)]);
      const bool real = !v.reals.empty() && (v.elem == Elem::kF32 || v.elem == Elem::kF64);
      // u64 from the int64 bits, so that -1 is stored as 2^64-1
      mem_type = real                   ? H5T_NATIVE_DOUBLE
                 : v.elem == Elem::kU64 ? H5T_NATIVE_UINT64
                                        : H5T_NATIVE_INT64;
      for (uint64_t i = 0; i < count; ++i)
        real ? append(bytes, v.reals[i % v.reals.size()])
             : append(bytes, v.ints.empty() ? int64_t{0} : v.ints[i % v.ints.size()]);
      return;
    }
    size_t size = 1;
    for (uint64_t i = 0; i < count; ++i) {
      texts.push_back(text_of(v, i));
      size = std::max(size, texts.back().size());
    }
    file_type = H5Tcopy(H5T_C_S1);
    H5Tset_size(file_type, v.elem == Elem::kVarStr ? H5T_VARIABLE : size);
    mem_type = file_type;
    for (auto& t : texts) {
      if (v.elem == Elem::kVarStr) {
        ptrs.push_back(t.c_str());
      } else {
        t.resize(size, '\0');
        bytes += t;
      }
    }
  }
  ~Payload() { H5Tclose(file_type); }
  Payload(const Payload&) = delete;
  Payload& operator=(const Payload&) = delete;
  const void* data() const {
    return ptrs.empty() ? static_cast<const void*>(bytes.data()) : ptrs.data();
  }
};

void make_group(hid_t file, const char* path) {
  H5Handle(H5Gcreate2(file, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
}

H5Handle make_space(const Values& v, bool unlimited) {
  if (v.null_space) return H5Handle(H5Screate(H5S_NULL), H5Sclose);
  if (v.dims.empty()) return H5Handle(H5Screate(H5S_SCALAR), H5Sclose);
  const std::vector<hsize_t> max(v.dims.size(), H5S_UNLIMITED);
  return H5Handle(H5Screate_simple(static_cast<int>(v.dims.size()), v.dims.data(),
                                   unlimited ? max.data() : nullptr),
                  H5Sclose);
}

// Creates dataset `name` (a path from `loc`) as `v` and `layout` say; an extent of more than
// kMaxWritten values is created without storage. The bytes stored (the reader's crc32 input:
// the values in the file type, which is the native one) go to *stored. False where HDF5 refuses
// the combination (the dataset is then missing).
bool write_dataset(hid_t loc, const std::string& name, const Values& v, Layout layout,
                   std::string* stored = nullptr) {
  bool huge = false;
  const uint64_t count = value_count(v, &huge);
  if (huge) layout = Layout::kUnwritten;
  // a scalar or null dataspace cannot be chunked
  if ((v.dims.empty() || v.null_space) && layout != Layout::kCompact && layout != Layout::kLate)
    layout = Layout::kContiguous;
  if (layout == Layout::kCompact && count > 4000) layout = Layout::kContiguous;  // max 64 KiB
  const Payload p(v, count);
  const bool chunked = layout == Layout::kChunked || layout == Layout::kDeflate ||
                       layout == Layout::kPartial || layout == Layout::kUnwritten;
  H5Handle space = make_space(v, chunked);
  H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (layout == Layout::kCompact) H5Pset_layout(dcpl, H5D_COMPACT);
  if (chunked) {
    std::vector<hsize_t> chunk;
    for (hsize_t d : v.dims) chunk.push_back(std::min<hsize_t>(std::max<hsize_t>(d, 1), 4));
    H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
    if (layout == Layout::kDeflate) H5Pset_deflate(dcpl, 1);
  }
  if (layout == Layout::kPartial || layout == Layout::kUnwritten) {
    // nothing is allocated or filled for chunks never written: the file stays tiny
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_INCR);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  }
  if (layout == Layout::kLate) H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_LATE);
  H5Handle ds(H5Dcreate2(loc, name.c_str(), p.file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
              H5Dclose);
  if (!ds.ok()) return false;
  if (count == 0 || layout == Layout::kUnwritten || layout == Layout::kLate) return true;
  if (layout == Layout::kPartial) {
    // one value, in the first chunk: the other chunks stay unstored
    const std::vector<hsize_t> start(v.dims.size(), 0), one(v.dims.size(), 1);
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, one.data(), nullptr);
    const hsize_t single = 1;
    H5Handle mem(H5Screate_simple(1, &single, nullptr), H5Sclose);
    return H5Dwrite(ds, p.mem_type, mem, space, H5P_DEFAULT, p.data()) >= 0;
  }
  if (H5Dwrite(ds, p.mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data()) < 0) return false;
  if (stored && p.ptrs.empty()) {
    stored->assign(count * H5Tget_size(p.file_type), '\0');
    H5Dread(ds, p.file_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, stored->data());
  }
  return true;
}

// (re)creates attribute `name` of the object at `object` (a path from `loc`)
void put_attr(hid_t loc, const std::string& object, const std::string& name, const Values& v) {
  if (H5Aexists_by_name(loc, object.c_str(), name.c_str(), H5P_DEFAULT) > 0)
    H5Adelete_by_name(loc, object.c_str(), name.c_str(), H5P_DEFAULT);
  bool huge = false;
  const uint64_t count = value_count(v, &huge);
  if (huge) return;  // an attribute holds its values: none that large is made
  const Payload p(v, count);
  H5Handle space = make_space(v, false);
  H5Handle attr(H5Acreate_by_name(loc, object.c_str(), name.c_str(), p.file_type, space,
                                  H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
  if (attr.ok() && count > 0) H5Awrite(attr, p.mem_type, p.data());
}

Values ints(Elem e, std::vector<int64_t> v, std::vector<hsize_t> dims = {}) {
  Values out;
  out.elem = e;
  out.ints = std::move(v);
  out.dims = std::move(dims);
  return out;
}

Values texts(Elem e, std::vector<std::string> v, std::vector<hsize_t> dims = {}) {
  Values out = ints(e, {}, std::move(dims));
  out.texts = std::move(v);
  return out;
}

std::string dims_text(const Values& v) {
  if (v.null_space) return "null";
  std::string s = "[";
  for (size_t i = 0; i < v.dims.size(); ++i) s += (i ? "," : "") + std::to_string(v.dims[i]);
  return s + "]";
}

std::string describe(const Values& v) { return elem_name(v.elem) + dims_text(v); }

// extents on and beyond the readers' limits (image side 32768, channels 64, 2^31, 2^62, ...)
hsize_t interesting_extent(Rng& r) {
  static const std::vector<hsize_t> kValues = {
      0,        1,        2,           3,     4,     63,     64,       65,           255,
      256,      32767,    32768,       32769, 65535, 100000, pow2(31), pow2(32) + 1, pow2(40),
      pow2(61), pow2(62), pow2(63) - 1};
  return r.pick(kValues);
}

// ---- HDF5 image sets -------------------------------------------------------------------------

struct ImageSet {
  Values images, labels, names;
  Layout images_layout = Layout::kContiguous, labels_layout = Layout::kContiguous;
  bool has_images = true, has_labels = true;
  std::string names_on = "labels";  // object holding `class_names`; empty: none
  std::string extra;                // an extra object: "dataset", "group", "link", "dangling"
  bool images_group = false;        // `images` is a group, not a dataset
};

void refill(Rng& r, Values& v, int64_t bound) {
  bool huge = false;
  v.ints.resize(value_count(v, &huge));  // none for an extent never written
  for (auto& x : v.ints) x = r.range(0, bound - 1);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}

std::string edit_set(Rng& r, ImageSet& s, int64_t classes) {
  const hsize_t n = s.images.dims.empty() ? 0 : s.images.dims[0];
  switch (r.below(11)) {
    case 0:
    case 1: {  // another rank, and/or one extent on or beyond a limit
      const bool rank = r.chance(50);
      if (rank) s.images.dims.resize(static_cast<size_t>(r.range(1, 5)), 2);
      if (!rank || r.chance(50))
        s.images.dims[r.below(s.images.dims.size())] = interesting_extent(r);
      refill(r, s.images, 256);
      return "images extent " + dims_text(s.images);
    }
    case 2:
      s.images.elem = r.pick(std::vector<Elem>{Elem::kI8, Elem::kU16, Elem::kF32, Elem::kF64,
                                               Elem::kFixedStr, Elem::kVarStr, Elem::kU8});
      return "images type " + elem_name(s.images.elem);
    case 3:
      s.labels.elem = r.pick(kAllElems);
      return "labels type " + elem_name(s.labels.elem);
    case 4: {
      const int64_t kMin = std::numeric_limits<int64_t>::min(), kMax = -(kMin + 1);
      static const std::vector<int64_t> kLabels = {-1,    kMin,   kMax,  int64_t{1} << 40,
                                                   255,   256,    65535, int64_t{1} << 31,
                                                   99999, 100000, 100001};
      if (s.labels.ints.empty()) s.labels.ints.push_back(0);
      int64_t& label = s.labels.ints[r.below(s.labels.ints.size())];
      label = r.chance(30) ? classes + r.range(0, 1) : r.pick(kLabels);
      return "label " + std::to_string(label);
    }
    case 5: {
      s.labels.dims = r.pick(std::vector<std::vector<hsize_t>>{
          {n + 1}, {n > 0 ? n - 1 : 0}, {}, {n, 1}, {interesting_extent(r)}});
      s.labels.null_space = r.chance(15);
      refill(r, s.labels, classes);
      return "labels extent " + dims_text(s.labels);
    }
    case 6: {
      // class_names: fixed/variable, one joined string or an array, empty, not text, elsewhere
      std::vector<std::string> names = numbered("class", classes);
      const bool array = r.chance(50);
      const int variant = static_cast<int>(r.below(7));
      if (variant == 0) names = {""};
      if (variant == 1) names.resize(static_cast<size_t>(r.range(0, classes)));
      if (variant == 2) names = {" a ", "", "b,c", " "};
      if (variant == 3) s.names_on = r.pick(std::vector<std::string>{"images", "/", ""});
      Elem e = r.chance(50) ? Elem::kFixedStr : Elem::kVarStr;
      if (variant == 4) e = r.pick(std::vector<Elem>{Elem::kI64, Elem::kF32, Elem::kU8});
      s.names = array ? texts(e, names, {names.size()}) : texts(e, {join(names)});
      if (array && r.chance(20)) s.names.dims = {1, names.size()};
      s.names.ints = {7};
      s.names.null_space = variant == 5;
      return "class_names " + describe(s.names) + " on '" + s.names_on + "'";
    }
    case 7: {
      Layout& l = r.chance(50) ? s.images_layout : s.labels_layout;
      l = any_layout(r);
      return std::string(&l == &s.images_layout ? "images" : "labels") + " layout " +
             kLayoutNames[static_cast<int>(l)];
    }
    case 8:
      (r.chance(50) ? s.has_images : s.has_labels) = false;
      return s.has_images ? "no labels" : "no images";
    case 9:
      s.extra = r.pick(std::vector<std::string>{"dataset", "group", "link", "dangling"});
      s.images_group = s.extra == "group" && r.chance(50);
      return "extra " + s.extra + (s.images_group ? " (images is a group)" : "");
    default:
      (r.chance(50) ? s.images : s.labels).null_space = true;
      return "null dataspace";
  }
}

}  // namespace

std::vector<std::string> make_hdf5_set(Rng& r, const std::string& path, int max_edits) {
  ImageSet s;
  const hsize_t n = r.chance(10) ? 0 : static_cast<hsize_t>(r.range(1, 5));
  s.images = ints(Elem::kU8, {}, {n, hsize_t(r.range(1, 5)), hsize_t(r.range(1, 5))});
  if (r.chance(50)) s.images.dims.push_back(r.chance(50) ? 1 : 3);
  refill(r, s.images, 256);
  const int64_t classes = r.range(1, 6);
  s.labels =
      ints(r.pick(std::vector<Elem>{Elem::kI64, Elem::kI32, Elem::kU8, Elem::kI16}), {}, {n});
  refill(r, s.labels, classes);
  const std::vector<std::string> names = numbered("class", classes);
  const Elem str = r.chance(50) ? Elem::kFixedStr : Elem::kVarStr;
  s.names = r.chance(50) ? texts(str, {join(names)}) : texts(str, names, {names.size()});
  if (r.chance(30)) s.names_on = "";
  std::vector<std::string> edits;
  for (int i = r.edits(max_edits); i > 0; --i) edits.push_back(edit_set(r, s, classes));
  H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) return {"(cannot create " + path + ")"};
  if (s.images_group)
    make_group(file, "images");
  else if (s.has_images && !write_dataset(file, "images", s.images, s.images_layout))
    edits.push_back("(images not created)");
  if (s.has_labels && !write_dataset(file, "labels", s.labels, s.labels_layout))
    edits.push_back("(labels not created)");
  if (!s.names_on.empty() && H5Oexists_by_name(file, s.names_on.c_str(), H5P_DEFAULT) > 0)
    put_attr(file, s.names_on, "class_names", s.names);
  if (s.extra == "dataset")
    write_dataset(file, "extra", ints(Elem::kF32, {1, 2}, {2}), Layout::kContiguous);
  if (s.extra == "group") make_group(file, "meta");
  if (s.extra == "link" || s.extra == "dangling") {
    // `labels` becomes `images` itself (a second hard link), or a link to nothing
    if (H5Lexists(file, "labels", H5P_DEFAULT) > 0) H5Ldelete(file, "labels", H5P_DEFAULT);
    if (s.extra == "link") H5Lcreate_hard(file, "images", file, "labels", H5P_DEFAULT, H5P_DEFAULT);
    if (s.extra == "dangling") H5Lcreate_soft("/nowhere", file, "labels", H5P_DEFAULT, H5P_DEFAULT);
  }
  return edits;
}

// ---- checkpoint edits ------------------------------------------------------------------------

namespace {

// the root attributes with the type and count write_checkpoint gives them
struct RootAttr {
  const char* name;
  Elem elem;
  size_t count;
};
const std::vector<RootAttr> kRootAttrs = {
    {"format_version", Elem::kI64, 1},  {"epoch", Elem::kI64, 1},
    {"input_shape", Elem::kI64, 3},     {"normalize_mean", Elem::kF64, 1},
    {"normalize_std", Elem::kF64, 1},   {"test_metrics", Elem::kF64, 2},
    {"config", Elem::kFixedStr, 1},     {"architecture", Elem::kFixedStr, 1},
    {"spec", Elem::kFixedStr, 1},       {"lineage", Elem::kFixedStr, 1},
    {"class_names", Elem::kFixedStr, 1}};

bool exists(hid_t file, const std::string& path) {
  // every prefix must exist before H5Lexists may be asked about the whole path
  for (size_t at = path.find('/'); at != std::string::npos; at = path.find('/', at + 1))
    if (H5Lexists(file, path.substr(0, at).c_str(), H5P_DEFAULT) <= 0) return false;
  return H5Lexists(file, path.c_str(), H5P_DEFAULT) > 0;
}

herr_t collect_link(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

// the names in a group; none when it is missing or not a group
std::vector<std::string> members(hid_t file, const std::string& group) {
  std::vector<std::string> out;
  if (exists(file, group))
    H5Literate_by_name(file, group.c_str(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_link, &out,
                       H5P_DEFAULT);
  return out;
}

uint32_t crc_of(const std::string& bytes) {
  return static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0),
                                     reinterpret_cast<const Bytef*>(bytes.data()),
                                     static_cast<uInt>(bytes.size())));
}

// replaces (or adds) dataset `path` with one carrying the crc32 of its bytes, as format 2 does
std::string replace_dataset(hid_t file, const std::string& path, const Values& v, Layout layout) {
  if (exists(file, path)) H5Ldelete(file, path.c_str(), H5P_DEFAULT);
  std::string bytes;
  if (!write_dataset(file, path, v, layout, &bytes)) return path + " refused by HDF5";
  put_attr(file, path, "crc32", ints(Elem::kU32, {static_cast<int64_t>(crc_of(bytes))}));
  return path + " := " + describe(v) + " " + kLayoutNames[static_cast<int>(layout)];
}

Values random_tensor(Rng& r, const std::vector<hsize_t>& old) {
  Values v = ints(r.chance(70) ? Elem::kF32 : r.pick(kAllElems), {}, old);
  const uint64_t variant = r.below(5);  // 4: same extent, other type or layout
  if (variant == 0 && !v.dims.empty()) v.dims[r.below(v.dims.size())] = interesting_extent(r);
  if (variant == 1) {  // any rank, small extents
    v.dims.assign(r.below(10), 0);
    for (auto& d : v.dims) d = static_cast<hsize_t>(r.range(0, 3));
  }
  // nothing stored, and a product that overflows unless the zero is seen first
  if (variant == 2) v.dims = {0, pow2(62), pow2(62)};
  if (variant == 3) v.dims = {pow2(31), pow2(31)};
  refill(r, v, 100);
  return v;
}

// values for an attribute: mostly of its own type and count, limits of each type, sometimes
// another type, shape or none at all
Values attr_values(Rng& r, Elem elem, size_t count) {
  const int64_t kMin = std::numeric_limits<int64_t>::min(), kMax = -(kMin + 1);
  static const std::vector<int64_t> kInts = {0,  1,     2,     3,    -1,   4,
                                             32, 32768, 32769, kMin, kMax, int64_t{1} << 40};
  static const std::vector<double> kReals = {0,      0.5,      1,         -1,  1e300, -1e300,
                                             1e-310, INFINITY, -INFINITY, NAN, 3.5e38};
  static const std::vector<std::string> kTexts = {
      "",       "a",     std::string("ab\0cd", 5),      "\n\n\n", "epoch\nloss",
      "x\r\ny", "a,b,c", "epoch\nloss\naccuracy\nextra"};
  Values v;
  v.elem = r.chance(75) ? elem : r.pick(kAllElems);
  if (!r.chance(60)) count = static_cast<size_t>(r.range(0, 5));
  for (size_t i = 0; i < count; ++i) {
    v.ints.push_back(r.chance(50) ? r.range(1, 8) : r.pick(kInts));
    v.reals.push_back(r.chance(30) ? 0.25 : r.pick(kReals));
    v.texts.push_back(r.chance(5) ? std::string(size_t(r.range(1000, 70000)), 'x')
                                  : r.pick(kTexts));
  }
  if (count != 1 || r.chance(50)) v.dims = {count};
  if (r.chance(5)) v.dims = {1, count};
  v.null_space = r.chance(3);
  return v;
}

std::string edit_checkpoint(Rng& r, hid_t file) {
  const std::vector<std::string> model = members(file, "model");
  const std::string tensor = model.empty() ? "model/t" : "model/" + r.pick(model);
  const bool metrics = exists(file, "metrics");
  switch (r.below(10)) {
    case 0:
    case 1: {  // a root attribute (or the metrics columns) rewritten
      const RootAttr a =
          r.chance(90) || !metrics ? r.pick(kRootAttrs) : RootAttr{"columns", Elem::kFixedStr, 1};
      const Values v = attr_values(r, a.elem, a.count);
      put_attr(file, a.elem == Elem::kFixedStr && !std::strcmp(a.name, "columns") ? "metrics" : ".",
               a.name, v);
      return std::string(a.name) + " := " + describe(v);
    }
    case 9: {  // a channel count input_shape and both normalize vectors agree on
      const int64_t c = r.pick(std::vector<int64_t>{0, 1, 2, 4, 64, 65, 1000, 1 << 20});
      put_attr(file, ".", "input_shape", ints(Elem::kI64, {c, r.range(0, 9), 8}, {3}));
      Values v = ints(Elem::kF64, {}, {hsize_t(c)});
      v.reals = {r.chance(50) ? 0.5 : r.pick(std::vector<double>{0, -1, NAN, INFINITY, 1e300})};
      v.null_space = c == 0 && r.chance(50);
      put_attr(file, ".", "normalize_mean", v);
      put_attr(file, ".", "normalize_std", v);
      return "channels " + std::to_string(c) + ", normalize " + describe(v);
    }
    case 2: {
      if (r.chance(20) && metrics) {
        H5Adelete_by_name(file, "metrics", "columns", H5P_DEFAULT);
        return "metrics/columns deleted";
      }
      const char* name = r.chance(10) ? "attributes_crc32" : r.pick(kRootAttrs).name;
      H5Adelete(file, name);
      return std::string(name) + " deleted";
    }
    case 3: {  // a tensor of other extents, type or layout
      std::vector<hsize_t> dims;
      if (exists(file, tensor)) {
        H5Handle ds(H5Dopen2(file, tensor.c_str(), H5P_DEFAULT), H5Dclose);
        H5Handle space(H5Dget_space(ds), H5Sclose);
        dims.resize(static_cast<size_t>(std::max(0, H5Sget_simple_extent_ndims(space))));
        H5Sget_simple_extent_dims(space, dims.data(), nullptr);
      }
      return replace_dataset(file, tensor, random_tensor(r, dims), any_layout(r));
    }
    case 4:
      switch (r.below(6)) {
        case 0:
          return replace_dataset(file, "model/extra.weight", random_tensor(r, {2}),
                                 Layout::kContiguous);
        case 1:
          make_group(file, "model/sub");
          return "group model/sub";
        case 2:
          if (exists(file, tensor)) H5Ldelete(file, tensor.c_str(), H5P_DEFAULT);
          return tensor + " deleted";
        case 3:
          H5Ldelete(file, "model", H5P_DEFAULT);
          if (r.chance(50))
            write_dataset(file, "model", ints(Elem::kF32, {1}, {1}), Layout::kContiguous);
          return "model group replaced";
        case 4:
          H5Lcreate_soft(("/" + tensor).c_str(), file, "model/alias", H5P_DEFAULT, H5P_DEFAULT);
          return "soft link model/alias";
        default:
          H5Lcreate_soft("/nowhere", file, "model/dangling", H5P_DEFAULT, H5P_DEFAULT);
          return "dangling link model/dangling";
      }
    case 5: {  // the metrics table: forged extents, rows without columns, other shapes or types
      if (r.chance(15)) {
        H5Ldelete(file, r.chance(50) ? "metrics/history" : "metrics", H5P_DEFAULT);
        return "metrics deleted";
      }
      Values v = ints(r.chance(80) ? Elem::kF64 : r.pick(kAllElems), {1, 2, 3});
      v.dims =
          r.pick(std::vector<std::vector<hsize_t>>{{pow2(61), 8},
                                                   {pow2(61), 0},
                                                   {hsize_t(r.range(1, 1000)), 0},
                                                   {hsize_t(r.range(0, 3)), 3},
                                                   {hsize_t(r.range(0, 3)), hsize_t(r.range(1, 5))},
                                                   {2},
                                                   {2, 3, 2}});
      // rows without columns hold no bytes, whatever their number
      if (metrics && v.dims.size() == 2 && v.dims[1] == 0 && r.chance(80))
        put_attr(file, "metrics", "columns", texts(Elem::kFixedStr, {""}));
      if (!metrics) make_group(file, "metrics");
      return replace_dataset(file, "metrics/history", v, any_layout(r));
    }
    case 6: {  // the optimizer archive: other shapes, types, a forged extent, or gone
      if (r.chance(20)) {
        H5Ldelete(file, "optimizer/archive", H5P_DEFAULT);
        return "optimizer/archive deleted";
      }
      Values v = ints(r.chance(60) ? Elem::kU8 : r.pick(kAllElems), {1, 2, 3, 4});
      v.dims = r.pick(std::vector<std::vector<hsize_t>>{{4}, {2, 2}, {interesting_extent(r)}, {}});
      if (!exists(file, "optimizer")) make_group(file, "optimizer");
      return replace_dataset(file, "optimizer/archive", v, any_layout(r));
    }
    default: {  // a checksum attribute deleted or retyped
      const std::string object = r.chance(30) || !exists(file, tensor) ? "." : tensor;
      const std::string name = object == "." ? "attributes_crc32" : "crc32";
      if (r.chance(40)) {
        H5Adelete_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT);
        return object + "/" + name + " deleted";
      }
      const Values v = attr_values(r, Elem::kU32, 1);
      put_attr(file, object, name, v);
      return object + "/" + name + " := " + describe(v);
    }
  }
}

// format 1: no checksum anywhere (the reader refuses a format 1 file that carries one)
void downgrade(hid_t file) {
  put_attr(file, ".", "format_version", ints(Elem::kI64, {1}));
  H5Adelete(file, "attributes_crc32");
  std::vector<std::string> paths;
  H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, collect_link, &paths);
  for (const auto& p : paths)
    if (H5Oexists_by_name(file, p.c_str(), H5P_DEFAULT) > 0 &&
        H5Aexists_by_name(file, p.c_str(), "crc32", H5P_DEFAULT) > 0)
      H5Adelete_by_name(file, p.c_str(), "crc32", H5P_DEFAULT);
}

}  // namespace

std::vector<std::string> mutate_checkpoint(Rng& r, const std::string& path, int max_edits,
                                           CheckpointSeal seal) {
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) return {"(cannot open " + path + ")"};
  std::vector<std::string> edits;
  for (int i = r.edits(max_edits); i > 0; --i) edits.push_back(edit_checkpoint(r, file));
  if (seal == CheckpointSeal::kDowngrade) downgrade(file);
  return edits;
}

}  // namespace adascale::fuzz
