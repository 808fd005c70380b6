// Runtime benchmarks on generated networks (random weights, BN already folded into conv biases):
//  branch/<backend>/<precision>/w<width>: one inference, batch 1, one thread, ResNet-like branch
//    for 1x28x28 input (stem 16, stages 16/32/64 of two residual blocks of two 3x3 convs each);
//    backend xnnpack runs the architecture kernels where the CPU has them (int8 conv on
//    AVX512-VNNI), xnnpack-plain XNNPACK alone;
//  layer/<type>/<precision>[/plain]: four identical layers of one type on XNNPACK (int8 chains also
//    pay one quantize and one dequantize, measured alone by layer/quant_roundtrip);
//  prepare/<backend>/<precision>/w<width>: cold preparation (operator creation, weight packing,
//    arena planning) of a branch; precision int8q is int8 whose weights are stored in float32
//    and quantized when the branch is prepared (weight_quantize, as exported int8 twins do);
//  capi_select_cached: adascale_select of an already prepared branch (target <= 100 us);
//  bundle/<backend>/<branch>: with ADASCALE_BENCH_BUNDLE=path (and optionally
//    ADASCALE_BENCH_BRANCHES=name,name,...; default all), every branch of an exported bundle on
//    xnnpack, and its int8 branches also on xnnpack-plain, side by side in one process;
//  threads/<branch>/t<N>[/untuned]: with ADASCALE_BENCH_THREADS=N as well, each wanted branch on
//    1 thread and on N threads, with per-node tuning (nodes that the pool does not make faster
//    run on the calling thread) and without it (every node on the pool), side by side.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "adascale.h"
#include "runtime/backend.h"
#include "runtime/bundle.h"

namespace adascale {
namespace {

constexpr int kClasses = 10;
constexpr double kActScale = 0.05;  // every int8 activation; multipliers stay far below 1
constexpr float kWeightScale = 0.01f;

std::vector<int64_t> pair(int64_t v) { return {v, v}; }

// Adds the tensors and nodes of a network to a writer, f32 or int8, under a name prefix so that
// several variants can share one bundle.
class NetBuilder {
 public:
  // quantize_at_prepare: int8 nodes over float32 weights (weight_quantize)
  NetBuilder(BundleWriter* writer, std::string prefix, bool int8, uint32_t seed,
             bool quantize_at_prepare = false)
      : w_(writer),
        prefix_(std::move(prefix)),
        int8_(int8),
        quantize_(int8 && quantize_at_prepare),
        rng_(seed) {}

  // conv (+bias) with fused activation; weight OHWI per group.
  std::string conv(const std::string& in, int64_t in_c, int64_t out_c, int64_t k, int64_t stride,
                   int64_t groups, const char* activation) {
    const std::string name = prefix_ + "n" + std::to_string(count_++);
    const int64_t gi = in_c / groups;
    add_weights(name, {out_c, k, k, gi}, out_c, k * k * gi);
    Attrs attrs;
    attrs.set("kernel", pair(k))
        .set("stride", pair(stride))
        .set("pad", std::vector<int64_t>(4, k / 2))
        .set("groups", static_cast<double>(groups))
        .set("activation", activation);
    return add(make("conv2d", {in}, name, weight_params(name), quantized(attrs)));
  }
  std::string fc(const std::string& in, int64_t in_c, int64_t out_c, const char* activation) {
    const std::string name = prefix_ + "n" + std::to_string(count_++);
    add_weights(name, {out_c, in_c}, out_c, in_c);
    return add(make("fully_connected", {in}, name, weight_params(name),
                    quantized(Attrs().set("activation", activation))));
  }
  std::string op(const std::string& op, std::vector<std::string> inputs, Attrs attrs = {}) {
    const std::string name = prefix_ + "n" + std::to_string(count_++);
    return add(make(op, std::move(inputs), name, {}, std::move(attrs)));
  }
  // quantize / dequantize only when building the int8 variant.
  std::string enter(const std::string& in) { return int8_ ? op("quantize", {in}) : in; }
  std::string leave(const std::string& in) { return int8_ ? op("dequantize", {in}) : in; }

  Status finish(const std::string& branch_name, const std::string& output) {
    branch_.name = branch_name;
    branch_.input = "input";
    branch_.output = output;
    return w_->add_branch(branch_);
  }

 private:
  Node make(const std::string& op, std::vector<std::string> inputs, const std::string& output,
            std::map<std::string, std::string> params, Attrs attrs) {
    Node node;
    node.op = op;
    node.inputs = std::move(inputs);
    node.output = output;
    node.params = std::move(params);
    node.attrs = std::move(attrs);
    const bool produces_int8 = int8_ && op != "dequantize" && op != "flatten";
    if (produces_int8) node.attrs.set("out_scale", kActScale).set("out_zero_point", 0.0);
    return node;
  }
  std::string add(Node node) {
    branch_.nodes.push_back(std::move(node));
    return branch_.nodes.back().output;
  }
  std::map<std::string, std::string> weight_params(const std::string& name) {
    std::map<std::string, std::string> params{{"weight", name + ".w"}, {"bias", name + ".b"}};
    if (int8_ && !quantize_) params["weight_scale"] = name + ".s";
    return params;
  }
  Attrs quantized(Attrs attrs) const {
    // every int8 activation has scale kActScale, the input of this node included
    if (quantize_) attrs.set("weight_quantize", "int8").set("bias_input_scale", kActScale);
    return attrs;
  }
  void add_weights(const std::string& name, const Shape& shape, int64_t out_c, int64_t fan_in) {
    const size_t count = static_cast<size_t>(shape_elements(shape));
    if (int8_ && !quantize_) {
      std::uniform_int_distribution<int> q(-127, 127);
      std::vector<int8_t> w(count);
      for (int8_t& v : w) v = static_cast<int8_t>(q(rng_));
      std::uniform_int_distribution<int32_t> b(-1000, 1000);
      std::vector<int32_t> bias(static_cast<size_t>(out_c));
      for (int32_t& v : bias) v = b(rng_);
      w_->add_i8(name + ".w", shape, w);
      w_->add_i32(name + ".b", {out_c}, bias);
      w_->add_f32(name + ".s", {out_c},
                  std::vector<float>(static_cast<size_t>(out_c), kWeightScale));
    } else {
      // He-uniform keeps activations in range through the residual stack.
      const float a = std::sqrt(6.0f / static_cast<float>(fan_in));
      std::uniform_real_distribution<float> u(-a, a), b(-0.1f, 0.1f);
      std::vector<float> w(count), bias(static_cast<size_t>(out_c));
      for (float& v : w) v = u(rng_);
      for (float& v : bias) v = b(rng_);
      w_->add_f32(name + ".w", shape, w);
      w_->add_f32(name + ".b", {out_c}, bias);
    }
  }

  BundleWriter* w_;
  std::string prefix_;
  bool int8_;
  bool quantize_;
  std::mt19937 rng_;
  Branch branch_;
  int count_ = 0;
};

// precision: f32, int8, or int8q (int8 quantizing float32 weights when prepared)
std::string branch_name(const std::string& precision, double width) {
  return precision + "/w" + (width == 1.0 ? "1.0" : "0.25");
}

// ResNet-like: stem 3x3 -> 3 stages x 2 basic blocks (stride 2 and a 1x1 projection at stage
// entry) -> global average pool -> fully connected.
void add_resnet(BundleWriter* w, const std::string& precision, double width) {
  NetBuilder b(w, branch_name(precision, width) + "/", precision != "f32", 42,
               precision == "int8q");
  auto channels = [&](int64_t c) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::lround(c * width)));
  };
  int64_t c = channels(16);
  std::string x = b.conv(b.enter("input"), 1, c, 3, 1, 1, "relu");
  const int64_t stage_channels[3] = {16, 32, 64};
  for (int s = 0; s < 3; ++s) {
    const int64_t out_c = channels(stage_channels[s]);
    for (int block = 0; block < 2; ++block) {
      const int64_t stride = s > 0 && block == 0 ? 2 : 1;
      std::string shortcut = x;
      if (stride != 1 || out_c != c) shortcut = b.conv(x, c, out_c, 1, stride, 1, "none");
      std::string y = b.conv(x, c, out_c, 3, stride, 1, "relu");
      y = b.conv(y, out_c, out_c, 3, 1, 1, "none");
      x = b.op("add", {y, shortcut}, Attrs().set("activation", "relu"));
      c = out_c;
    }
  }
  x = b.op("flatten", {b.op("global_avg_pool", {x})});
  x = b.leave(b.fc(x, c, kClasses, "none"));
  Status s = b.finish(branch_name(precision, width), x);
  if (!s.ok()) throw std::runtime_error(s.message);
}

// All six ResNet branches in one writer (weights shared nowhere: each has its own).
const BundleWriter& resnet_writer() {
  static BundleWriter* writer = [] {
    auto* w = new BundleWriter();
    w->set_model_name("bench-resnet");
    w->set_input({1, 1, 28, 28}, {0.13f}, {0.31f});
    std::vector<std::string> classes;
    for (int i = 0; i < kClasses; ++i) classes.push_back(std::to_string(i));
    w->set_classes(classes);
    for (const char* precision : {"f32", "int8", "int8q"})
      for (double width : {1.0, 0.25}) add_resnet(w, precision, width);
    return w;
  }();
  return *writer;
}

std::string resnet_path() {
  return (std::filesystem::temp_directory_path() /
          ("adascale_bench_" + std::to_string(::getpid()) + ".bundle"))
      .string();
}

// Written once per process and opened like a deployed bundle (mapped weights).
const Bundle& resnet_bundle() {
  static std::unique_ptr<Bundle> bundle = [] {
    Status s = resnet_writer().write(resnet_path());
    std::unique_ptr<Bundle> b;
    if (s.ok()) s = Bundle::open(resnet_path(), &b);
    if (!s.ok()) throw std::runtime_error(s.message);
    return b;
  }();
  return *bundle;
}

std::unique_ptr<Backend> backend(const std::string& kind) {
  if (kind == "reference") return make_reference_backend();
  return make_xnnpack_backend(1, /*arch_kernels=*/kind != "xnnpack-plain");
}

void run_prepared(benchmark::State& state, PreparedBranch* prepared, const Shape& nhwc) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> input(static_cast<size_t>(shape_elements(nhwc)));
  for (float& v : input) v = u(rng);
  std::vector<float> output(static_cast<size_t>(prepared->output_features() * nhwc[0]));
  for (auto _ : state) {
    Status s = prepared->run(input.data(), nhwc[0], output.data(), output.size());
    if (!s.ok()) {
      state.SkipWithError(s.message.c_str());
      return;
    }
    benchmark::DoNotOptimize(output.data());
    benchmark::ClobberMemory();
  }
  state.counters["ref_fallbacks"] = static_cast<double>(prepared->reference_fallbacks());
  state.counters["arena_KiB"] = prepared->arena_bytes() / 1024.0;
  state.counters["weights_KiB"] = prepared->weight_bytes() / 1024.0;
}

void BM_Branch(benchmark::State& state, const std::string& kind, const std::string& precision,
               double width) {
  const Bundle& bundle = resnet_bundle();
  auto be = backend(kind);
  std::unique_ptr<PreparedBranch> prepared;
  Status s = be->prepare(*bundle.find_branch(branch_name(precision, width)), bundle.constants(),
                         bundle.input().nhwc(), &prepared);
  if (!s.ok()) return state.SkipWithError(s.message.c_str());
  run_prepared(state, prepared.get(), bundle.input().nhwc());
}

void BM_Prepare(benchmark::State& state, const std::string& kind, const std::string& precision,
                double width) {
  const Bundle& bundle = resnet_bundle();
  const Branch& branch = *bundle.find_branch(branch_name(precision, width));
  auto be = backend(kind);
  std::unique_ptr<PreparedBranch> warm;  // XNNPACK initialisation is a one-off, not measured
  be->prepare(branch, bundle.constants(), bundle.input().nhwc(), &warm);
  for (auto _ : state) {
    std::unique_ptr<PreparedBranch> prepared;
    Status s = be->prepare(branch, bundle.constants(), bundle.input().nhwc(), &prepared);
    if (!s.ok()) return state.SkipWithError(s.message.c_str());
    benchmark::DoNotOptimize(prepared.get());
  }
}

// Layer chains: kLayers identical layers of one type, each in its own single-branch writer.
constexpr int kLayers = 4;

struct LayerCase {
  std::unique_ptr<BundleWriter> writer;
  Shape nhwc;
};

LayerCase make_layer_case(const std::string& type, bool int8) {
  LayerCase lc;
  lc.writer = std::make_unique<BundleWriter>();
  NetBuilder b(lc.writer.get(), "", int8, 7);
  std::string x;
  if (type == "fc") {
    lc.nhwc = {1, 1, 1, 512};
    x = b.op("flatten", {b.enter("input")});
    for (int i = 0; i < kLayers; ++i) x = b.fc(x, 512, 512, "relu");
  } else if (type == "quant_roundtrip") {
    lc.nhwc = {1, 14, 14, 32};
    x = b.enter("input");
  } else {
    const bool depthwise = type == "dwconv3x3";
    const int64_t c = depthwise ? 64 : 32;
    lc.nhwc = {1, 14, 14, c};
    x = b.enter("input");
    for (int i = 0; i < kLayers; ++i)
      x = b.conv(x, c, c, type == "conv1x1" ? 1 : 3, 1, depthwise ? c : 1, "relu");
  }
  x = b.leave(x);
  lc.writer->set_input({1, lc.nhwc[3], lc.nhwc[1], lc.nhwc[2]}, {}, {});
  Status s = b.finish("layer", x);
  if (!s.ok()) throw std::runtime_error(type + ": " + s.message);
  return lc;
}

void BM_Layer(benchmark::State& state, const std::string& type, bool int8, bool arch_kernels) {
  LayerCase lc = make_layer_case(type, int8);
  // Reopen through a written bundle: the writer does not expose its branches.
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("adascale_bench_layer_" + std::to_string(::getpid()) + ".bundle"))
                               .string();
  Status s = lc.writer->write(path);
  std::unique_ptr<Bundle> bundle;
  if (s.ok()) s = Bundle::open(path, &bundle);
  if (!s.ok()) return state.SkipWithError(s.message.c_str());
  auto be = make_xnnpack_backend(1, arch_kernels);
  std::unique_ptr<PreparedBranch> prepared;
  s = be->prepare(bundle->branches().front(), bundle->constants(), lc.nhwc, &prepared);
  if (!s.ok()) return state.SkipWithError(s.message.c_str());
  run_prepared(state, prepared.get(), lc.nhwc);
  std::filesystem::remove_all(path);
}

void BM_CapiSelectCached(benchmark::State& state) {
  resnet_bundle();  // writes the bundle file
  const std::string path = resnet_path();
  adascale_runtime* rt = nullptr;
  char message[256];
  if (adascale_open_ex(path.c_str(), ADASCALE_BACKEND_XNNPACK, 1, &rt, message, sizeof(message)) !=
      ADASCALE_OK)
    return state.SkipWithError(message);
  const char* names[2] = {"f32/w1.0", "int8/w0.25"};
  for (const char* name : names)
    if (adascale_select(rt, name) != ADASCALE_OK)
      return state.SkipWithError(adascale_last_error(rt));
  size_t i = 0;
  for (auto _ : state) {
    if (adascale_select(rt, names[i++ & 1]) != ADASCALE_OK) {
      state.SkipWithError(adascale_last_error(rt));
      break;
    }
  }
  size_t cached = 0;
  adascale_cache_info(rt, &cached, nullptr);
  state.counters["cached_branches"] = static_cast<double>(cached);
  adascale_close(rt);
}

void BM_BundleBranch(benchmark::State& state, const Bundle* bundle, const std::string& kind,
                     const std::string& name) {
  auto be = backend(kind);
  std::unique_ptr<PreparedBranch> prepared;
  Status s = be->prepare(*bundle->find_branch(name), bundle->constants(), bundle->input().nhwc(),
                         &prepared);
  if (!s.ok()) return state.SkipWithError(s.message.c_str());
  run_prepared(state, prepared.get(), bundle->input().nhwc());
}

void BM_BundleThreads(benchmark::State& state, const Bundle* bundle, const std::string& name,
                      int threads, bool tune) {
  auto be = make_xnnpack_backend(threads, true, tune);
  std::unique_ptr<PreparedBranch> prepared;
  Status s = be->prepare(*bundle->find_branch(name), bundle->constants(), bundle->input().nhwc(),
                         &prepared);
  if (!s.ok()) return state.SkipWithError(s.message.c_str());
  run_prepared(state, prepared.get(), bundle->input().nhwc());
}

void register_threads(const Bundle* bundle, const std::vector<std::string>& names, int threads) {
  for (const std::string& name : names) {
    auto add = [&](const std::string& label, int t, bool tune) {
      benchmark::RegisterBenchmark(("threads/" + name + "/" + label).c_str(), BM_BundleThreads,
                                   bundle, name, t, tune)
          ->Unit(benchmark::kMicrosecond);
    };
    const std::string n = "t" + std::to_string(threads);
    add("t1", 1, false);
    add(n, threads, true);
    add(n + "/untuned", threads, false);
  }
}

void register_bundle(const char* path, const char* names) {
  static std::unique_ptr<Bundle> bundle;
  Status s = Bundle::open(path, &bundle);
  if (!s.ok()) throw std::runtime_error(std::string("ADASCALE_BENCH_BUNDLE: ") + s.message);
  std::vector<std::string> wanted;
  for (std::string rest = names ? names : ""; !rest.empty();) {
    const size_t comma = rest.find(',');
    wanted.push_back(rest.substr(0, comma));
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
  }
  if (wanted.empty())
    for (const Branch& b : bundle->branches()) wanted.push_back(b.name);
  for (const std::string& name : wanted)
    if (!bundle->find_branch(name))
      throw std::runtime_error("ADASCALE_BENCH_BRANCHES: no branch '" + name + "' in " + path);
  if (const char* threads = std::getenv("ADASCALE_BENCH_THREADS")) {
    const int n = std::atoi(threads);
    if (n < 2 || n > 64) throw std::runtime_error("ADASCALE_BENCH_THREADS: 2 to 64");
    register_threads(bundle.get(), wanted, n);
    return;
  }
  // an fp32 branch next to its int8 twin, so the two are timed seconds apart
  auto add = [&](const std::string& kind, const std::string& name) {
    benchmark::RegisterBenchmark(("bundle/" + kind + "/" + name).c_str(), BM_BundleBranch,
                                 bundle.get(), kind, name)
        ->Unit(benchmark::kMicrosecond);
  };
  auto add_int8 = [&](const std::string& name) {  // with and without the arch kernels
    add("xnnpack", name);
    add("xnnpack-plain", name);
  };
  auto wanted_has = [&](const std::string& name) {
    return std::find(wanted.begin(), wanted.end(), name) != wanted.end();
  };
  for (const std::string& name : wanted) {
    const size_t twin = name.rfind(">int8");
    if (twin == std::string::npos) {
      add("xnnpack", name);
      if (wanted_has(name + ">int8")) add_int8(name + ">int8");
    } else if (!wanted_has(name.substr(0, twin))) {
      add_int8(name);  // else registered next to its fp32 twin
    }
  }
}

void register_all() {
  if (const char* path = std::getenv("ADASCALE_BENCH_BUNDLE")) {
    register_bundle(path, std::getenv("ADASCALE_BENCH_BRANCHES"));
    return;
  }
  for (const char* kind : {"xnnpack", "xnnpack-plain", "reference"})
    for (const char* precision : {"f32", "int8"})
      for (double width : {1.0, 0.25}) {
        if (precision == std::string("f32") && std::string(kind) == "xnnpack-plain")
          continue;  // same as xnnpack in fp32
        benchmark::RegisterBenchmark(
            ("branch/" + std::string(kind) + "/" + branch_name(precision, width)).c_str(),
            BM_Branch, std::string(kind), std::string(precision), width)
            ->Unit(benchmark::kMicrosecond);
      }
  for (const char* type : {"conv3x3", "conv1x1", "dwconv3x3", "fc", "quant_roundtrip"})
    for (int variant = 0; variant < 3; ++variant) {  // f32, int8, int8 on XNNPACK alone
      const bool int8 = variant > 0, plain = variant == 2;
      if (!int8 && std::string(type) == "quant_roundtrip") continue;
      benchmark::RegisterBenchmark(
          ("layer/" + std::string(type) + "/" + (int8 ? "int8" : "f32") + (plain ? "/plain" : ""))
              .c_str(),
          BM_Layer, std::string(type), int8, !plain)
          ->Unit(benchmark::kMicrosecond);
    }
  for (const char* kind : {"xnnpack", "reference"})
    for (const char* precision : {"f32", "int8", "int8q"})
      for (double width : {1.0, 0.25})
        benchmark::RegisterBenchmark(
            ("prepare/" + std::string(kind) + "/" + branch_name(precision, width)).c_str(),
            BM_Prepare, std::string(kind), std::string(precision), width)
            ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("capi_select_cached", BM_CapiSelectCached)
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace
}  // namespace adascale

int main(int argc, char** argv) {
  adascale::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // The generated bundle lives in the temp directory for the process only.
  std::error_code ec;
  std::filesystem::remove_all(adascale::resnet_path(), ec);
  return 0;
}
