// data_fuzz: structure-aware fuzzing of the server-side readers of IDX, CIFAR binary and HDF5 image
// sets (datasets/dataset.h) and of checkpoints (trainer/checkpoint.h).
//
//   data_fuzz [--runs N] [--seed S] [--dir D] [--kinds idx,cifar,hdf5,checkpoint]
//             [--max-edits M] [--run I] [--verbose 1]
//
// Input i, from a generator seeded with (S, i): a small valid file of a random kind, then 1..M
// edits of its parsed structure (header fields, extents, types, attributes, labels, class names)
// that get past magic numbers and checksums (data_mutations.h). The reader must refuse it with
// the project's error type or load something consistent that survives being written and read
// again. Anything else (another exception type escaping, a broken invariant, over 10 s) is a
// finding: reported with run index and seed, files copied to D/finding-<i>/, exit status 1.
// A sanitizer report aborts (the death callback names the run and keeps its files).
// --max-edits 0 checks the generators: every unedited input must load. --run I makes input I only.
// --verbose 1 prints every input's edits and outcome (to see which checks the edits reach).
#include <hdf5.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <thread>

#include "datasets/dataset.h"
#include "datasets/detail.h"
#include "fuzz/data_mutations.h"
#include "trainer/checkpoint.h"

#if defined(__SANITIZE_ADDRESS__)
#include <dlfcn.h>
#include <sanitizer/common_interface_defs.h>
// No input is meant to need more than a few MiB: a reader that sizes a buffer from a forged
// claim fails fast (a finding) instead of driving the machine into swap.
extern "C" const char* __asan_default_options() {
  return "allocator_may_return_null=1:max_allocation_size_mb=4096";
}
#endif

namespace fs = std::filesystem;

namespace adascale::fuzz {
namespace {

using data::DataError;
using trainer::CheckpointError;

// what a loaded result got wrong (a finding, unlike the readers' own errors)
struct Finding : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// one generated input: its files, the edits made, and how to read (and check) it
struct Input {
  std::vector<std::string> edits;
  std::function<void()> read;
};

// The invariants of every loaded set; returns its pixels and labels for comparisons. Touching
// every pixel lets ASan catch a buffer shorter than size() x numel().
std::pair<std::string, std::vector<int64_t>> contents(const data::Dataset& set) {
  const data::ImageShape s = set.shape();
  if (s.channels <= 0 || s.height <= 0 || s.width <= 0 || set.size() < 0 || set.num_classes() < 1)
    throw Finding("loaded a set with an empty image shape or no classes");
  std::string pixels;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < set.size(); ++i) {
    const int64_t label = set.label(i);
    if (label < 0 || label >= set.num_classes())
      throw Finding("loaded label " + std::to_string(label) + " of example " + std::to_string(i));
    labels.push_back(label);
    pixels.append(reinterpret_cast<const char*>(set.pixels(i)), static_cast<size_t>(s.numel()));
  }
  return {pixels, labels};
}

void expect_contents(const data::Dataset& set, const std::string& pixels,
                     const std::vector<int64_t>& labels) {
  const auto [got_pixels, got_labels] = contents(set);
  if (got_pixels != pixels) throw Finding("loaded other pixels than the file holds");
  if (got_labels != labels) throw Finding("loaded other labels than the file holds");
}

// ---- IDX ---------------------------------------------------------------------------------------

std::string edit_idx(Rng& r, Idx& images, Idx& labels, int64_t classes,
                     std::vector<std::string>& names, int& layout) {
  Idx& f = r.chance(50) ? images : labels;
  const std::string which = &f == &images ? "images " : "labels ";
  switch (r.below(10)) {
    case 0:
      f.type = r.pick(std::vector<uint8_t>{0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e, 0x00, 0xff});
      return which + "type " + std::to_string(f.type);
    case 1:
      f.rank = static_cast<uint8_t>(r.below(256));
      if (r.chance(50)) f.dims.resize(std::min<size_t>(f.rank, 6), 1);
      return which + "rank " + std::to_string(f.rank);
    case 2:
      f.zero[r.below(2)] = static_cast<uint8_t>(r.range(1, 255));
      return which + "magic zero bytes";
    case 3: {
      if (f.dims.empty()) return which + "no dims";
      const size_t k = r.below(f.dims.size());
      f.dims[k] = interesting_u32(r);
      // half the time the body follows (where small enough), so the claim is consistent
      uint64_t bytes = 1;
      for (uint32_t d : f.dims)
        if (__builtin_mul_overflow(bytes, uint64_t{d}, &bytes)) bytes = UINT64_MAX;
      if (bytes <= (uint64_t{1} << 22) && r.chance(50)) f.body.resize(bytes, '\1');
      return which + "dim " + std::to_string(k) + " = " + std::to_string(f.dims[k]);
    }
    case 4:  // truncated or extended
      f.body = r.chance(50) ? f.body.substr(0, r.below(f.body.size() + 1))
                            : f.body + r.bytes(static_cast<size_t>(r.range(1, 64)));
      return which + "body of " + std::to_string(f.body.size()) + " bytes";
    case 5: {
      if (labels.body.empty() || classes > 255) return "no label to raise";
      const size_t k = r.below(labels.body.size());
      labels.body[k] = static_cast<char>(r.range(classes, 255));
      return "label " + std::to_string(uint8_t(labels.body[k])) + " of " + std::to_string(classes) +
             " classes";
    }
    case 6: {
      const uint32_t n = labels.dims.empty() ? 0 : labels.dims[0];
      labels.dims = {r.chance(50) ? n + 1 : n - 1};
      if (r.chance(50)) labels.body.resize(labels.dims[0] % 1000, '\1');
      return "labels count " + std::to_string(labels.dims[0]);
    }
    case 7:
      f.gz = true;
      f.gz_plain = r.chance(50);
      f.gz_cut = f.gz_plain ? 0 : r.range(1, 40);
      return which + (f.gz_plain ? "plain bytes named .gz" : "gzip stream cut");
    case 8:
      layout = static_cast<int>(r.range(1, 4));
      return "file layout " + std::to_string(layout);
    default:
      names.resize(r.below(static_cast<uint64_t>(classes) + 2), "x");
      return std::to_string(names.size()) + " class names";
  }
}

Input make_idx(Rng& r, const std::string& dir, int max_edits) {
  const uint32_t n = r.chance(10) ? 0 : static_cast<uint32_t>(r.range(1, 6));
  const uint32_t rows = static_cast<uint32_t>(r.range(1, 8)),
                 cols = static_cast<uint32_t>(r.range(1, 8));
  std::vector<std::string> names;
  int64_t classes = 10;
  if (r.chance(40)) names = numbered("n", classes = r.chance(50) ? 10 : r.range(1, 12));
  Idx images{{0, 0}, 0x08, 3, {n, rows, cols}, r.bytes(size_t{n} * rows * cols), r.chance(30)};
  Idx labels{{0, 0}, 0x08, 1, {n}, r.bytes(n, static_cast<uint64_t>(classes)), r.chance(30)};
  int layout = 0;  // 1: images missing, 2: labels a folder, 3: files swapped, 4: same file twice
  Input in;
  for (int i = r.edits(max_edits); i > 0; --i)
    in.edits.push_back(edit_idx(r, images, labels, classes, names, layout));
  std::string ipath = images.write(dir + "/images-idx3-ubyte");
  std::string lpath = labels.write(dir + "/labels-idx1-ubyte");
  if (layout == 1) fs::remove(ipath);
  if (layout == 2) fs::remove(lpath), fs::create_directory(lpath);
  if (layout == 3) std::swap(ipath, lpath);
  if (layout == 4) lpath = ipath;
  const std::string pixels = images.bytes().substr(std::min<size_t>(16, images.bytes().size()));
  const std::string label_text = labels.bytes().substr(std::min<size_t>(8, labels.bytes().size()));
  const std::vector<uint8_t> label_bytes(label_text.begin(), label_text.end());
  in.read = [=] {
    const auto set = data::read_idx(ipath, lpath, names);
    expect_contents(*set, pixels, std::vector<int64_t>(label_bytes.begin(), label_bytes.end()));
  };
  return in;
}

// ---- CIFAR ------------------------------------------------------------------------------------

std::string edit_cifar(Rng& r, std::vector<std::string>& files, std::vector<std::string>& paths,
                       bool& cifar100, std::vector<std::string>& names) {
  const size_t label_bytes = cifar100 ? 2 : 1, record = label_bytes + 3072;
  std::string& f = files[r.below(files.size())];
  switch (r.below(6)) {
    case 0: {  // a partial record
      const size_t cut = static_cast<size_t>(r.range(1, static_cast<int64_t>(record) - 1));
      f = r.chance(50) ? f + r.bytes(cut) : f.substr(0, f.size() - std::min(f.size(), cut));
      return "file of " + std::to_string(f.size()) + " bytes";
    }
    case 1:
      f.clear();
      return "empty file";
    case 2: {  // a label (CIFAR-100: coarse or fine) out of range
      const size_t at =
          r.below(f.size() / record + 1) * record + (r.chance(50) ? 0 : label_bytes - 1);
      if (at < f.size())
        f[at] = static_cast<char>(r.range(cifar100 && at % record == 0 ? 20 : 10, 255));
      return "label byte at " + std::to_string(at);
    }
    case 3: {
      const std::string dir = fs::path(paths.empty() ? "." : paths[0]).parent_path().string();
      const std::vector<std::string> extra = {paths.empty() ? dir : paths[0], dir + "/missing.bin",
                                              dir};
      const size_t what = r.below(4);
      if (what < 3) paths.push_back(extra[what]);  // a file twice, a missing one, a folder
      if (what == 3) paths.clear();
      return "file list variant " + std::to_string(what);
    }
    case 4:
      cifar100 = !cifar100;
      return cifar100 ? "read as CIFAR-100" : "read as CIFAR-10";
    default:
      names.resize(r.below(120), "n");
      return std::to_string(names.size()) + " class names";
  }
}

Input make_cifar(Rng& r, const std::string& dir, int max_edits) {
  bool cifar100 = r.chance(40);
  std::vector<std::string> files(static_cast<size_t>(r.range(1, 3)));
  for (auto& f : files)
    for (int64_t i = r.range(1, 3); i > 0; --i)
      f += (cifar100 ? std::string(1, char(r.below(20))) + char(r.below(100))
                     : std::string(1, char(r.below(10)))) +
           r.bytes(3072);
  std::vector<std::string> names;
  if (r.chance(30)) names = numbered("c", cifar100 ? 100 : 10);
  std::vector<std::string> paths;
  for (size_t k = 0; k < files.size(); ++k)
    paths.push_back(dir + "/batch_" + std::to_string(k) + ".bin");
  Input in;
  const std::vector<std::string> written = paths;  // edits may change what the reader is given
  for (int i = r.edits(max_edits); i > 0; --i)
    in.edits.push_back(edit_cifar(r, files, paths, cifar100, names));
  for (size_t k = 0; k < files.size(); ++k) put_file(written[k], files[k]);
  in.read = [=] {
    const auto set = data::read_cifar_binary(paths, cifar100, names);
    // what the files on disk hold, record by record
    const size_t lb = cifar100 ? 2 : 1, rec = lb + 3072;
    std::string pixels;
    std::vector<int64_t> labels;
    for (const auto& p : paths) {
      const std::vector<uint8_t> bytes = data::detail::read_file_bytes(p);
      for (size_t at = 0; at + rec <= bytes.size(); at += rec) {
        labels.push_back(bytes[at + lb - 1]);
        pixels.append(reinterpret_cast<const char*>(bytes.data()) + at + lb, 3072);
      }
    }
    expect_contents(*set, pixels, labels);
  };
  return in;
}

// ---- HDF5 image sets --------------------------------------------------------------------------

Input make_hdf5(Rng& r, const std::string& dir, int max_edits) {
  const std::string path = dir + "/set.h5", again = dir + "/again.h5";
  Input in;
  in.edits = make_hdf5_set(r, path, max_edits);
  in.read = [=] {
    try {
      data::detail::hdf5_class_names(path);  // what open_dataset compares across splits
    } catch (const DataError&) {
    }
    const auto set = data::read_hdf5(path);
    const auto [pixels, labels] = contents(*set);
    // what loaded must survive write_hdf5 and read_hdf5 unchanged
    try {
      data::write_hdf5(*set, again);
    } catch (const DataError&) {
      return;  // a class name with a comma cannot be written: refused, documented
    }
    const auto back = data::read_hdf5(again);
    if (back->class_names() != set->class_names() ||
        back->shape().numel() != set->shape().numel() ||
        back->shape().channels != set->shape().channels)
      throw Finding("write_hdf5 + read_hdf5 changed the class names or the shape");
    expect_contents(*back, pixels, labels);
  };
  return in;
}

// ---- checkpoints ------------------------------------------------------------------------------

torch::Tensor tensor(Rng& r, std::vector<int64_t> sizes, torch::Dtype dtype) {
  auto t = torch::empty(sizes, torch::kFloat32);
  for (int64_t k = 0; k < t.numel(); ++k)
    t.data_ptr<float>()[k] = static_cast<float>(r.range(-64, 64)) / 8;
  return t.to(dtype);
}

trainer::Checkpoint small_checkpoint(Rng& r) {
  trainer::Checkpoint ck;
  const int64_t c = r.chance(50) ? 1 : 3;
  ck.epoch = r.range(0, 5);
  ck.config_ini = "[train]\nepochs = 3\n";
  ck.architecture = "resnet stem 2, widths 2";
  if (r.chance(50)) ck.spec = "{\"stages\":[1]}";
  if (r.chance(30)) ck.lineage = "prune0.50";
  ck.input_shape = {c, 8, 8};
  ck.class_names = {"a", "b c", "d"};
  ck.normalize_mean.assign(static_cast<size_t>(c), 0.25f);
  ck.normalize_std.assign(static_cast<size_t>(c), 0.5f);
  ck.test_accuracy = r.chance(50) ? -1.0 : 0.75;
  ck.tensors["conv.weight"] = tensor(r, {2, c, 3, 3}, torch::kFloat32);
  ck.tensors["bn.running_mean"] = tensor(r, {2}, torch::kFloat32);
  ck.tensors["bn.num_batches_tracked"] = tensor(r, {}, torch::kInt64);
  ck.tensors["fc.bias"] = tensor(r, {3}, torch::kFloat32);
  if (r.chance(50)) ck.optimizer_archive = r.bytes(16);
  ck.metric_columns = {"epoch", "loss", "accuracy"};
  for (int64_t e = r.range(0, 3); e > 0; --e) ck.metrics.push_back({double(e), 0.5, 0.25});
  return ck;
}

// NaN compares unequal to itself: a loaded NaN must come back as the same bits
template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// where two checkpoints differ (format_version aside: a write always upgrades); "" if nowhere
std::string difference(const trainer::Checkpoint& a, const trainer::Checkpoint& b) {
  const auto fields = [](const trainer::Checkpoint& c) {
    return std::tie(c.epoch, c.config_ini, c.architecture, c.spec, c.lineage, c.input_shape,
                    c.class_names, c.optimizer_archive, c.metric_columns);
  };
  if (fields(a) != fields(b)) return "attributes";
  if (!same_bits(a.normalize_mean, b.normalize_mean) ||
      !same_bits(a.normalize_std, b.normalize_std) ||
      !same_bits(std::vector<double>{a.test_accuracy, a.test_loss}, {b.test_accuracy, b.test_loss}))
    return "normalize or test metrics";
  for (size_t i = 0; i < a.metrics.size() || i < b.metrics.size(); ++i)
    if (i >= a.metrics.size() || i >= b.metrics.size() || !same_bits(a.metrics[i], b.metrics[i]))
      return "metrics";
  if (a.tensors.size() != b.tensors.size()) return "tensor count";
  for (const auto& [name, t] : a.tensors) {
    const auto it = b.tensors.find(name);
    if (it == b.tensors.end() || t.scalar_type() != it->second.scalar_type() ||
        t.sizes() != it->second.sizes() ||
        (t.nbytes() > 0 && std::memcmp(t.data_ptr(), it->second.data_ptr(), t.nbytes()) != 0))
      return "tensor " + name;
  }
  return "";
}

volatile unsigned g_sink = 0;  // keeps the reads below

// invariants of a loaded checkpoint; touching every tensor byte lets ASan check the buffers
void check_checkpoint(const trainer::Checkpoint& ck) {
  if (ck.format_version != 1 && ck.format_version != 2) throw Finding("loaded an unknown format");
  if (ck.input_shape.size() != 3 || ck.normalize_mean.size() != size_t(ck.input_shape[0]) ||
      ck.normalize_std.size() != size_t(ck.input_shape[0]))
    throw Finding("loaded inconsistent input_shape/normalize");
  for (const auto& row : ck.metrics)
    if (row.size() != ck.metric_columns.size()) throw Finding("loaded a ragged metrics table");
  for (const auto& [name, t] : ck.tensors) {
    if (!t.defined() || !t.is_contiguous() ||
        (t.scalar_type() != torch::kFloat32 && t.scalar_type() != torch::kInt64))
      throw Finding("loaded tensor " + name + " undefined, strided or of another type");
    const auto* p = static_cast<const unsigned char*>(t.data_ptr());
    g_sink = std::accumulate(p, p + t.nbytes(), g_sink);  // reads every byte
  }
}

Input make_checkpoint(Rng& r, const std::string& dir, int max_edits) {
  const std::string path = dir + "/ckpt.h5", again = dir + "/again.h5";
  trainer::write_checkpoint(small_checkpoint(r), path);
  // half downgraded to format 1, so that edited root attributes can load too
  const CheckpointSeal seal = r.chance(50) ? CheckpointSeal::kDowngrade : CheckpointSeal::kFormat2;
  Input in;
  in.edits = mutate_checkpoint(r, path, max_edits, seal);
  in.edits.push_back(seal == CheckpointSeal::kDowngrade ? "format 1" : "format 2");
  in.read = [=] {
    const trainer::Checkpoint ck = trainer::read_checkpoint(path);
    check_checkpoint(ck);
    // what loaded must be writable, and read back the same
    try {
      trainer::write_checkpoint(ck, again);
      const std::string diff = difference(ck, trainer::read_checkpoint(again));
      if (!diff.empty()) throw Finding("written again, it reads back with other " + diff);
    } catch (const CheckpointError& e) {
      throw Finding(std::string("loaded, but cannot be written and read again: ") + e.what());
    }
  };
  return in;
}

// ---- driver ----------------------------------------------------------------------------------

using Generator = Input (*)(Rng&, const std::string&, int);
const std::map<std::string, Generator> kGenerators = {
    {"idx", make_idx}, {"cifar", make_cifar}, {"hdf5", make_hdf5}, {"checkpoint", make_checkpoint}};
const std::vector<std::string> kKinds = {"idx", "cifar", "hdf5", "checkpoint"};

// "" when the reader refused the input with the project's error or loaded it consistently;
// otherwise what went wrong. `refusal` gets the project error's message.
std::string outcome(const std::function<void()>& read, std::string* refusal) {
  // the readers' warnings (format 1 checkpoints) would drown the report
  std::ostringstream warnings;
  const std::unique_ptr<std::streambuf, void (*)(std::streambuf*)> restore(
      std::cerr.rdbuf(warnings.rdbuf()), [](std::streambuf* b) { std::cerr.rdbuf(b); });
  try {
    read();
    return "";
  } catch (const DataError& e) {
    *refusal = e.what();
  } catch (const CheckpointError& e) {
    *refusal = e.what();
  } catch (const Finding& e) {
    return e.what();
  } catch (const c10::Error& e) {
    return std::string("c10::Error escaped: ") + e.what_without_backtrace();
  } catch (const std::exception& e) {
    return std::string(typeid(e).name()) + " (mangled type name) escaped: " + e.what();
  } catch (...) {
    return "an exception of unknown type escaped";
  }
  return "";
}

// the input under way, for the sanitizer death callback and the watchdog
struct Current {
  std::atomic<int64_t> run{-1};
  std::atomic<int64_t> started_ms{0};
  uint64_t seed = 0;
  std::string kind, work, dir;
} g_current;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// copies the input's files to <dir>/finding-<run>/
std::string keep_files(int64_t run) {
  const std::string to = g_current.dir + "/finding-" + std::to_string(run);
  std::error_code ec;  // (copying a folder creates the target)
  fs::copy(g_current.work, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing,
           ec);
  return to;
}

void on_death() {
  const int64_t run = g_current.run.load();
  if (run < 0) return;
  std::fprintf(stderr, "data_fuzz: FINDING: run %lld (%s, seed %llu) crashed; input kept in %s\n",
               (long long)run, g_current.kind.c_str(), (unsigned long long)g_current.seed,
               keep_files(run).c_str());
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "data_fuzz: %s\nusage: data_fuzz [--runs N] [--seed S] [--dir D] "
               "[--kinds idx,cifar,hdf5,checkpoint] [--max-edits M] [--run I] [--verbose 1]\n",
               why);
  std::exit(2);
}

int fuzz_main(int argc, char** argv) {
  std::map<std::string, std::string> opt = {{"--runs", "1000"},   {"--seed", "1"}, {"--dir", ""},
                                            {"--max-edits", "4"}, {"--run", "-1"}, {"--kinds", ""},
                                            {"--verbose", "0"}};
  for (int i = 1; i < argc; i += 2) {
    if (!opt.count(argv[i]) || i + 1 >= argc) usage((std::string("bad option ") + argv[i]).c_str());
    opt[argv[i]] = argv[i + 1];
  }
  const auto number = [&](const char* key) -> int64_t {
    try {
      return std::stoll(opt[key]);
    } catch (const std::logic_error&) {
      usage((std::string("bad value for ") + key).c_str());
    }
  };
  const uint64_t runs = uint64_t(number("--runs")), seed = uint64_t(number("--seed"));
  const int max_edits = int(number("--max-edits"));
  const int64_t only = number("--run");
  const bool verbose = number("--verbose") != 0;
  std::string dir = opt["--dir"];
  std::vector<std::string> kinds;
  std::istringstream kind_list(opt["--kinds"]);
  for (std::string kind; std::getline(kind_list, kind, ',');) {
    if (!kGenerators.count(kind)) usage(("unknown kind " + kind).c_str());
    kinds.push_back(kind);
  }
  if (kinds.empty()) kinds = kKinds;
  const bool own_dir = dir.empty();
  if (own_dir) {
    // a RAM disk where there is one: thousands of small files are written and deleted
    std::string tmpl =
        ((fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path()) /
         "data_fuzz-XXXXXX");
    if (!mkdtemp(tmpl.data())) usage("cannot create a folder for the inputs");
    dir = tmpl;
  }
  fs::create_directories(dir);
  g_current.dir = dir;
  g_current.work = dir + "/work";
  g_current.seed = seed;
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_set_death_callback(on_death);
  // GCC's UBSan is a runtime of its own, with a death callback of its own
  if (void* ubsan = dlopen("libubsan.so.1", RTLD_NOW | RTLD_NOLOAD))
    if (void* set = dlsym(ubsan, "__sanitizer_set_death_callback"))
      reinterpret_cast<void (*)(void (*)())>(set)(on_death);
#endif
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  std::thread([] {  // names a reader stuck in a loop while it runs, not only if it returns
    for (int64_t reported = -1;; std::this_thread::sleep_for(std::chrono::seconds(1)))
      if (const int64_t run = g_current.run;
          run >= 0 && run != reported && now_ms() - g_current.started_ms > 10000)
        std::fprintf(stderr, "data_fuzz: run %lld is taking over 10 s\n",
                     (long long)(reported = run));
  })
      .detach();

  std::map<std::string, unsigned long long> per_kind;
  unsigned long long refused = 0, loaded = 0, findings = 0, total = 0;
  const int64_t start = now_ms();
  const uint64_t first = only >= 0 ? uint64_t(only) : 0, end = only >= 0 ? first + 1 : runs;
  for (uint64_t i = first; i < end; ++i) {
    Rng r(data::detail::hash_seed(seed, i));
    const std::string kind = kinds[r.below(kinds.size())];
    fs::remove_all(g_current.work);
    fs::create_directories(g_current.work);
    g_current.kind = kind;
    g_current.started_ms = now_ms();
    g_current.run = static_cast<int64_t>(i);
    Input in;
    std::string problem, refusal;
    try {
      in = kGenerators.at(kind)(r, g_current.work, max_edits);
      problem = outcome(in.read, &refusal);
    } catch (const std::exception& e) {
      problem = std::string("the generator failed (a fuzzer bug): ") + e.what();
    }
    const double seconds = double(now_ms() - g_current.started_ms) / 1000;
    if (problem.empty() && max_edits == 0 && !refusal.empty())
      problem = "an unedited input was refused: " + refusal;
    if (problem.empty() && seconds > 10) problem = "hang: took " + std::to_string(seconds) + " s";
    ++total;
    ++per_kind[kind];
    std::string edits;
    for (const auto& e : in.edits) edits += (edits.empty() ? "" : "; ") + e;
    if (verbose)
      std::fprintf(stderr, "run %llu %s [%s]: %s\n", (unsigned long long)i, kind.c_str(),
                   edits.c_str(), refusal.empty() ? "loaded" : refusal.c_str());
    if (!problem.empty()) {
      ++findings;
      std::fprintf(
          stderr,
          "data_fuzz: FINDING: run %llu (%s, seed %llu): %s\n  edits: %s\n  input kept in %s\n",
          (unsigned long long)i, kind.c_str(), (unsigned long long)seed, problem.c_str(),
          edits.c_str(), keep_files(int64_t(i)).c_str());
    } else if (refusal.empty()) {
      ++loaded;
    } else {
      ++refused;
    }
    g_current.run = -1;
  }
  fs::remove_all(g_current.work);
  const double seconds = std::max(1e-3, double(now_ms() - start) / 1000);
  std::printf("data_fuzz: %llu inputs in %.1f s (%.1f/s)\n", total, seconds, total / seconds);
  std::printf(
      "data_fuzz: %llu inputs (idx %llu, cifar %llu, hdf5 %llu, checkpoint %llu): "
      "refused %llu, loaded %llu, findings %llu\n",
      total, per_kind["idx"], per_kind["cifar"], per_kind["hdf5"], per_kind["checkpoint"], refused,
      loaded, findings);
  if (findings == 0 && own_dir) fs::remove_all(dir);
  if (findings > 0) std::printf("data_fuzz: the inputs of the findings are in %s\n", dir.c_str());
  return findings > 0 ? 1 : 0;
}

}  // namespace
}  // namespace adascale::fuzz

int main(int argc, char** argv) { return adascale::fuzz::fuzz_main(argc, argv); }
