// The runtime against OpenCV's DNN module on the ONNX files `adascale export --format onnx` wrote
// for a bundle (docs/onnx-export.md). A plain program, not a Google Benchmark.
//
//   onnx_compare parity  --bundle B --onnx DIR --idx IMAGES.gz [--images 200] [--branches LIST]
//     every fp32 branch (or LIST) on the first N IDX images: largest |logit difference| between
//     the runtime (XNNPACK backend, one thread) and OpenCV, top-1 agreement, both accuracies when
//     --labels is given
//   onnx_compare latency --bundle B --onnx DIR [--branches LIST] [--rounds 7] [--runs 200]
//     batch 1, one thread: runtime (XNNPACK) against OpenCV (DNN_BACKEND_OPENCV, CPU), alternated
//     per round; the median over rounds of each and their ratio. Without --branches: the fp32
//     branches with the most and the fewest MACs.
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/command_line.h"
#include "export/onnx_export.h"
#include "runtime/backend.h"
#include "runtime/branch_costs.h"
#include "runtime/bundle.h"

namespace {

using adascale::Branch;
using adascale::Bundle;

struct Options {
  std::string bundle, onnx_dir, idx, labels, branches;
  int64_t images = 200, rounds = 7, runs = 200;
};

// IDX ubyte file (gzip or plain), magic 0x0801 / 0x0803: the first `limit` items as bytes
std::vector<uint8_t> read_idx(const std::string& path, int64_t limit, int64_t* item_bytes) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  auto be32 = [&] {
    unsigned char b[4];
    if (gzread(f, b, 4) != 4) throw std::runtime_error(path + ": truncated header");
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
  };
  const uint32_t magic = be32();
  const int dims = magic & 0xff;
  if ((magic >> 8) != 0x08 || dims < 1 || dims > 4) throw std::runtime_error(path + ": not IDX");
  const int64_t count = be32();
  *item_bytes = 1;
  for (int d = 1; d < dims; ++d) *item_bytes *= be32();
  const int64_t n = std::min(count, limit);
  std::vector<uint8_t> bytes(static_cast<size_t>(n * *item_bytes));
  if (gzread(f, bytes.data(), static_cast<unsigned>(bytes.size())) !=
      static_cast<int>(bytes.size()))
    throw std::runtime_error(path + ": truncated data");
  gzclose(f);
  return bytes;
}

std::vector<const Branch*> pick(const Bundle& bundle, const std::string& spec, bool extremes) {
  if (!spec.empty()) return adascale::exporter::select_onnx_branches(bundle, spec);
  std::vector<const Branch*> fp32;
  std::vector<double> macs;
  for (const Branch& b : bundle.branches()) {
    adascale::BranchCosts costs;
    if (!adascale::parse_branch_costs(b.name, b.costs_json, &costs).ok()) continue;
    if (costs.int8) continue;
    fp32.push_back(&b);
    macs.push_back(costs.macs.value_or(0));
  }
  if (!extremes || fp32.empty()) return fp32;
  const auto most = std::max_element(macs.begin(), macs.end()) - macs.begin();
  const auto fewest = std::min_element(macs.begin(), macs.end()) - macs.begin();
  return {fp32[most], fp32[fewest]};
}

cv::dnn::Net load_onnx(const Options& o, const Branch& b) {
  const std::string path = o.onnx_dir + "/" + adascale::exporter::onnx_file_name(b.name) + ".onnx";
  cv::dnn::Net net = cv::dnn::readNetFromONNX(path);
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  return net;
}

std::unique_ptr<adascale::PreparedBranch> prepare(const Bundle& bundle, const Branch& b) {
  std::unique_ptr<adascale::PreparedBranch> p;
  const adascale::Status s =
      adascale::make_xnnpack_backend(1)->prepare(b, bundle.constants(), bundle.input().nhwc(), &p);
  if (!s.ok()) throw std::runtime_error(b.name + ": " + s.message);
  return p;
}

int argmax(const float* x, int64_t n) { return static_cast<int>(std::max_element(x, x + n) - x); }

int parity(const Options& o, const Bundle& bundle) {
  const adascale::BundleInput& in = bundle.input();
  const int64_t C = in.shape_nchw[1], H = in.shape_nchw[2], W = in.shape_nchw[3];
  int64_t item = 0, label_item = 0;
  const std::vector<uint8_t> pixels = read_idx(o.idx, o.images, &item);
  if (item != C * H * W) throw std::runtime_error(o.idx + ": images do not match the bundle");
  const int64_t n = static_cast<int64_t>(pixels.size()) / item;
  std::vector<uint8_t> labels;
  if (!o.labels.empty()) labels = read_idx(o.labels, n, &label_item);
  // the runtime's normalization (c_api): (pixel / 255 - mean[c]) / std[c], NCHW and NHWC copies
  std::vector<float> nchw(pixels.size()), nhwc(pixels.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < H * W; ++p) {
        // IDX images with channels store them last
        const float v = pixels[i * item + p * C + c] / 255.0f;
        const float mean = in.mean.empty() ? 0.0f : in.mean[c];
        const float inv_std = in.std.empty() ? 1.0f : 1.0f / in.std[c];
        nchw[(i * C + c) * H * W + p] = nhwc[i * item + p * C + c] = (v - mean) * inv_std;
      }
  std::printf("%-32s %12s %8s %9s %9s\n", "branch", "max|diff|", "top-1", "acc(rt)", "acc(cv)");
  double worst_all = 0;
  for (const Branch* b : pick(bundle, o.branches, false)) {
    auto runtime = prepare(bundle, *b);
    cv::dnn::Net net = load_onnx(o, *b);
    const int64_t k = runtime->output_features();
    std::vector<float> y(static_cast<size_t>(k));
    double worst = 0;
    int agree = 0, right_rt = 0, right_cv = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (!runtime->run(nhwc.data() + i * item, 1, y.data(), y.size()).ok())
        throw std::runtime_error(b->name + ": runtime failed");
      const int dims[4] = {1, static_cast<int>(C), static_cast<int>(H), static_cast<int>(W)};
      net.setInput(cv::Mat(4, dims, CV_32F, nchw.data() + i * item), "input");
      const cv::Mat out = net.forward();
      if (static_cast<int64_t>(out.total()) != k) throw std::runtime_error(b->name + ": shape");
      const float* z = out.ptr<float>();
      for (int64_t j = 0; j < k; ++j) worst = std::max(worst, std::fabs(double(y[j]) - z[j]));
      agree += argmax(y.data(), k) == argmax(z, k);
      if (!labels.empty()) {
        right_rt += argmax(y.data(), k) == labels[i];
        right_cv += argmax(z, k) == labels[i];
      }
    }
    worst_all = std::max(worst_all, worst);
    std::printf("%-32s %12.3g %7.1f%% %8.1f%% %8.1f%%\n", b->name.c_str(), worst, 100.0 * agree / n,
                labels.empty() ? NAN : 100.0 * right_rt / n,
                labels.empty() ? NAN : 100.0 * right_cv / n);
  }
  std::printf("%lld images; largest |logit difference| over all branches: %.3g\n",
              static_cast<long long>(n), worst_all);
  return 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

int latency(const Options& o, const Bundle& bundle) {
  cv::setNumThreads(1);
  const adascale::BundleInput& in = bundle.input();
  const int64_t C = in.shape_nchw[1], H = in.shape_nchw[2], W = in.shape_nchw[3];
  std::vector<float> x(static_cast<size_t>(C * H * W), 0.25f), y(4096);
  const int dims[4] = {1, static_cast<int>(C), static_cast<int>(H), static_cast<int>(W)};
  const cv::Mat blob(4, dims, CV_32F, x.data());
  using clock = std::chrono::steady_clock;
  std::printf("batch 1, 1 thread, %lld runs per round, %lld rounds; ms per inference\n",
              static_cast<long long>(o.runs), static_cast<long long>(o.rounds));
  for (const Branch* b : pick(bundle, o.branches, true)) {
    auto runtime = prepare(bundle, *b);
    cv::dnn::Net net = load_onnx(o, *b);
    auto time_runtime = [&](int64_t runs) {
      const auto t0 = clock::now();
      for (int64_t r = 0; r < runs; ++r)
        if (!runtime->run(x.data(), 1, y.data(), y.size()).ok())
          throw std::runtime_error(b->name + ": runtime failed");
      return std::chrono::duration<double, std::milli>(clock::now() - t0).count() / runs;
    };
    auto time_opencv = [&](int64_t runs) {
      const auto t0 = clock::now();
      for (int64_t r = 0; r < runs; ++r) {
        net.setInput(blob, "input");
        net.forward();
      }
      return std::chrono::duration<double, std::milli>(clock::now() - t0).count() / runs;
    };
    time_runtime(std::max<int64_t>(10, o.runs / 10));  // warm-up: caches, lazy allocations
    time_opencv(std::max<int64_t>(10, o.runs / 10));
    std::vector<double> rt, cv_ms;
    for (int64_t round = 0; round < o.rounds; ++round) {
      rt.push_back(time_runtime(o.runs));
      cv_ms.push_back(time_opencv(o.runs));
      std::printf("  %-30s round %lld: runtime %.4f  opencv %.4f\n", b->name.c_str(),
                  static_cast<long long>(round + 1), rt.back(), cv_ms.back());
    }
    const double a = median(rt), c = median(cv_ms);
    std::printf("%-32s runtime (xnnpack) %.4f ms  opencv dnn %.4f ms  opencv/runtime %.2fx\n",
                b->name.c_str(), a, c, c / a);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "parity" && mode != "latency") {
    std::fprintf(stderr, "usage: onnx_compare parity|latency --bundle B --onnx DIR [options]\n");
    return 2;
  }
  Options o;
  adascale::base::CommandLine cli("onnx_compare " + mode,
                                  "the runtime against OpenCV DNN on exported ONNX files");
  cli.option("bundle", &o.bundle, "the bundle the files were exported from", "DIR")
      .required("bundle")
      .option("onnx", &o.onnx_dir, "the folder of the .onnx files", "DIR")
      .required("onnx")
      .option("branches", &o.branches, "names, comma-separated (default: see the header)", "LIST")
      .option("idx", &o.idx, "parity: IDX images (gzip or plain)", "FILE")
      .option("labels", &o.labels, "parity: IDX labels of those images", "FILE")
      .option("images", &o.images, "parity: how many images")
      .range("images", 1)
      .option("rounds", &o.rounds, "latency: alternated rounds")
      .range("rounds", 1)
      .option("runs", &o.runs, "latency: inferences per round and engine")
      .range("runs", 1);
  try {
    if (cli.parse(argc - 1, argv + 1) != adascale::base::CommandLine::Outcome::kRun) return 0;
    if (mode == "parity" && o.idx.empty()) throw adascale::base::UsageError("parity needs --idx");
    std::unique_ptr<Bundle> bundle;
    const adascale::Status s = Bundle::open(o.bundle, &bundle);
    if (!s.ok()) throw std::runtime_error(o.bundle + ": " + s.message);
    return mode == "parity" ? parity(o, *bundle) : latency(o, *bundle);
  } catch (const std::exception& e) {
    std::string what = e.what();
    std::fprintf(stderr, "onnx_compare %s: %s\n", mode.c_str(),
                 what.substr(0, what.find('\n')).c_str());
    return 1;
  }
}
