// ONNX export (export/onnx_export.h): every exported branch of a small bundle, run by OpenCV's DNN
// module, reproduces the runtime's logits; the onnx checker accepts every file; bad input fails
// with one line. The bundle covers every op family the exporter converts, shared/sliced weights
// (weight_slice, weight_slice_halves, weight_mul) and an int8 twin (a QDQ model).
#include "export/onnx_export.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime_test_util.h"

namespace adascale {
namespace {

using testing::make_node;
using testing::random_floats;

constexpr int kClasses = 5;
const std::vector<int64_t> kInput = {1, 3, 12, 12};  // NCHW

Attrs window(const char* key, std::vector<int64_t> k, std::vector<int64_t> s,
             std::vector<int64_t> pad) {
  return Attrs().set(key, k).set("stride", s).set("pad", pad);
}

// "main": conv 3x3 stride 2 pad 1 (relu), depthwise 3x3 with asymmetric pad (relu6), grouped
//   1x1, residual add (relu), batchnorm, relu6, max pool, avg pool with padding, concat, relu,
//   flatten of a 3x3 tensor, fc (relu), fc, exit
// "shared": conv slices of stored weights with BatchNorm multipliers (one by halves), global
//   pool, fc on the pooled [N,1,1,C] tensor with a sliced weight, softmax
// "int8": quantize, int8 conv quantizing a shared float weight, int8 max pool, int8 global pool,
//   dequantize, flatten, fc
void build_bundle(BundleWriter* w) {
  std::mt19937 rng(11);
  w->set_model_name("onnx-fixture");
  w->set_input(kInput, {0.5f, 0.4f, 0.3f}, {0.25f, 0.2f, 0.3f});
  w->set_classes({"a", "b", "c", "d", "e"});
  auto add = [&](const std::string& name, const Shape& shape, float lo, float hi) {
    ASSERT_TRUE(w->add_f32(name, shape, random_floats(rng, shape_elements(shape), lo, hi)).ok());
  };
  add("stem.w", {8, 3, 3, 3}, -0.5f, 0.5f);
  add("stem.b", {8}, -0.1f, 0.1f);
  add("dw.w", {8, 3, 3, 1}, -0.8f, 0.8f);
  add("dw.b", {8}, -0.1f, 0.1f);
  add("pw.w", {8, 1, 1, 4}, -0.5f, 0.5f);
  add("bn.scale", {8}, 0.5f, 1.5f);
  add("bn.shift", {8}, -0.2f, 0.2f);
  add("fc1.w", {16, 144}, -0.2f, 0.2f);
  add("fc1.b", {16}, -0.1f, 0.1f);
  add("fc2.w", {kClasses, 16}, -0.5f, 0.5f);
  add("block.w", {8, 3, 3, 8}, -0.3f, 0.3f);
  add("mul6", {6}, 0.5f, 1.5f);
  add("bias6", {6}, -0.1f, 0.1f);
  add("mul4", {4}, 0.5f, 1.5f);
  add("fc.w", {kClasses, 8}, -1.0f, 1.0f);
  add("fc.b", {kClasses}, -0.1f, 0.1f);

  Branch main;
  main.name = "main>full@1/2";
  main.output = "logits";
  main.costs_json = R"({"pareto": true})";
  main.nodes = {
      make_node("conv2d", {"input"}, "c1", {{"weight", "stem.w"}, {"bias", "stem.b"}},
                window("kernel", {3, 3}, {2, 2}, {1, 1, 1, 1}).set("activation", "relu")),
      make_node("conv2d", {"c1"}, "dw", {{"weight", "dw.w"}, {"bias", "dw.b"}},
                window("kernel", {3, 3}, {1, 1}, {0, 1, 2, 1})
                    .set("groups", 8.0)
                    .set("activation", "relu6")),
      make_node("conv2d", {"dw"}, "pw", {{"weight", "pw.w"}},
                window("kernel", {1, 1}, {1, 1}, {0, 0, 0, 0}).set("groups", 2.0)),
      make_node("add", {"c1", "pw"}, "res", {}, Attrs().set("activation", "relu")),
      make_node("batchnorm", {"res"}, "bn", {{"scale", "bn.scale"}, {"shift", "bn.shift"}}),
      make_node("relu6", {"bn"}, "r6"),
      make_node("max_pool2d", {"r6"}, "mp", {}, window("pool", {3, 3}, {2, 2}, {1, 1, 1, 1})),
      make_node("avg_pool2d", {"mp"}, "ap", {}, window("pool", {2, 2}, {1, 1}, {0, 0, 1, 1})),
      make_node("concat", {"ap", "mp"}, "cat"),
      make_node("relu", {"cat"}, "r"),
      make_node("flatten", {"r"}, "flat"),
      make_node("fully_connected", {"flat"}, "fc1", {{"weight", "fc1.w"}, {"bias", "fc1.b"}},
                Attrs().set("activation", "relu")),
      make_node("fully_connected", {"fc1"}, "fc2", {{"weight", "fc2.w"}}),
      make_node("exit", {"fc2"}, "logits", {}, Attrs().set("head", "final")),
  };
  ASSERT_TRUE(w->add_branch(main).ok());

  Branch shared;
  shared.name = "shared";
  shared.output = "probs";
  shared.nodes = {
      make_node("conv2d", {"input"}, "c1",
                {{"weight", "stem.w"}, {"weight_mul", "mul6"}, {"bias", "bias6"}},
                window("kernel", {3, 3}, {1, 1}, {1, 1, 1, 1}).set("activation", "relu")),
      make_node("conv2d", {"c1"}, "c2", {{"weight", "block.w"}, {"weight_mul", "mul4"}},
                window("kernel", {3, 3}, {2, 2}, {1, 0, 1, 0})),
      make_node("global_avg_pool", {"c2"}, "gap"),
      make_node("fully_connected", {"gap"}, "fc", {{"weight", "fc.w"}, {"bias", "fc.b"}}),
      make_node("softmax", {"fc"}, "probs"),
  };
  shared.nodes[0].attrs.set("weight_slice", std::vector<int64_t>{6, 3});
  shared.nodes[1].attrs.set("weight_slice", std::vector<int64_t>{4, 6});
  shared.nodes[1].attrs.set("weight_slice_halves", std::vector<int64_t>{1, 1});
  shared.nodes[3].attrs.set("weight_slice", std::vector<int64_t>{kClasses, 4});
  ASSERT_TRUE(w->add_branch(shared).ok());

  Branch int8;
  int8.name = "main>int8";
  int8.output = "logits";
  Attrs qconv = window("kernel", {3, 3}, {1, 1}, {1, 1, 1, 1});
  qconv.set("activation", "relu")
      .set("out_scale", 0.05)
      .set("out_zero_point", -128.0)
      .set("weight_quantize", "int8")
      .set("bias_input_scale", 0.03);
  int8.nodes = {
      make_node("quantize", {"input"}, "q", {},
                Attrs().set("out_scale", 0.03).set("out_zero_point", 2.0)),
      make_node("conv2d", {"q"}, "c1", {{"weight", "stem.w"}, {"bias", "stem.b"}}, qconv),
      make_node("max_pool2d", {"c1"}, "mp", {}, window("pool", {2, 2}, {2, 2}, {0, 0, 0, 0})),
      make_node("global_avg_pool", {"mp"}, "gap", {},
                Attrs().set("out_scale", 0.02).set("out_zero_point", -100.0)),
      make_node("dequantize", {"gap"}, "dq"),
      make_node("flatten", {"dq"}, "flat"),
      make_node("fully_connected", {"flat"}, "logits", {{"weight", "fc.w"}, {"bias", "fc.b"}}),
  };
  ASSERT_TRUE(w->add_branch(int8).ok());
}

// 0: accepted; 1: refused; -1: no checker (this python cannot import onnx)
int onnx_checker(const std::string& file) {
  if (std::system("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") != 0) return -1;
  const std::string cmd =
      "/usr/bin/python3 -c \"import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), "
      "full_check=True)\" '" +
      file + "'";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) && WEXITSTATUS(rc) == 0 ? 0 : 1;
}

std::string run_cli(const std::string& args, int* status) {
  const std::string cmd = std::string(ADASCALE_CLI) + " export " + args + " 2>&1";
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  char buffer[4096];
  while (pipe && fgets(buffer, sizeof buffer, pipe)) out += buffer;
  const int rc = pipe ? pclose(pipe) : -1;
  *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

class OnnxExport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::temp_path("onnx"));
    BundleWriter writer;
    build_bundle(&writer);
    ASSERT_TRUE(writer.write(bundle_path()).ok());
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string bundle_path() { return *dir_ + "/fixture.bundle"; }
  static std::string* dir_;
};
std::string* OnnxExport::dir_ = nullptr;

// Logits of the runtime (both backends) and of OpenCV on 200 seeded inputs; returns the largest
// difference and counts top-1 agreement.
double compare(const Bundle& bundle, const Branch& branch, const std::string& onnx_file,
               double* top1_agreement) {
  cv::dnn::Net net = cv::dnn::readNetFromONNX(onnx_file);
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  const Shape nhwc = bundle.input().nhwc();
  std::unique_ptr<PreparedBranch> xnn, ref;
  EXPECT_TRUE(make_xnnpack_backend(1)->prepare(branch, bundle.constants(), nhwc, &xnn).ok());
  EXPECT_TRUE(make_reference_backend()->prepare(branch, bundle.constants(), nhwc, &ref).ok());
  if (!xnn || !ref) return INFINITY;
  const int64_t C = kInput[1], H = kInput[2], W = kInput[3];
  std::mt19937 rng(1234);
  double worst = 0;
  int agree = 0;
  const int kInputs = 200;
  for (int n = 0; n < kInputs; ++n) {
    const std::vector<float> nchw = random_floats(rng, C * H * W, -2.0f, 2.0f);
    std::vector<float> x(nchw.size());
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < H * W; ++p) x[p * C + c] = nchw[c * H * W + p];
    std::vector<float> a(kClasses), b(kClasses);
    EXPECT_TRUE(xnn->run(x.data(), 1, a.data(), a.size()).ok());
    EXPECT_TRUE(ref->run(x.data(), 1, b.data(), b.size()).ok());
    const int dims[4] = {1, static_cast<int>(C), static_cast<int>(H), static_cast<int>(W)};
    net.setInput(cv::Mat(4, dims, CV_32F, const_cast<float*>(nchw.data())), "input");
    const cv::Mat out = net.forward();
    EXPECT_EQ(out.total(), static_cast<size_t>(kClasses));
    const float* y = out.ptr<float>();
    for (int k = 0; k < kClasses; ++k)
      worst = std::max({worst, std::fabs(static_cast<double>(a[k] - y[k])),
                        std::fabs(static_cast<double>(b[k] - y[k]))});
    agree +=
        std::max_element(a.begin(), a.end()) - a.begin() == std::max_element(y, y + kClasses) - y;
  }
  *top1_agreement = static_cast<double>(agree) / kInputs;
  return worst;
}

TEST_F(OnnxExport, OpenCvReproducesTheRuntimeAndTheCheckerAcceptsEveryFile) {
  std::unique_ptr<Bundle> bundle;
  ASSERT_TRUE(Bundle::open(bundle_path(), &bundle).ok());
  std::vector<exporter::OnnxFile> files;
  ASSERT_NO_THROW(files = exporter::export_onnx_files(bundle_path(), "all", *dir_ + "/all", {}));
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(std::filesystem::path(files[0].path).filename(), "main+full@1_2.onnx");
  bool checked = true;
  for (const auto& f : files) {
    SCOPED_TRACE(f.branch);
    EXPECT_EQ(f.opset, 13);
    EXPECT_EQ(f.int8, f.branch == "main>int8");
    EXPECT_EQ(std::filesystem::file_size(f.path), f.bytes);
    const int verdict = onnx_checker(f.path);
    checked = checked && verdict >= 0;
    EXPECT_NE(verdict, 1) << "the onnx checker refused " << f.path;
    double top1 = 0;
    if (!f.int8) {
      const double worst = compare(*bundle, *bundle->find_branch(f.branch), f.path, &top1);
      std::printf("%s: largest |logit difference| runtime vs OpenCV %.3g\n", f.branch.c_str(),
                  worst);
      EXPECT_LT(worst, 1e-4);
      EXPECT_EQ(top1, 1.0);
      continue;
    }
    // QDQ: OpenCV 4.6 reads only per-tensor quantization (docs/onnx-export.md)
    try {
      compare(*bundle, *bundle->find_branch(f.branch), f.path, &top1);
      EXPECT_GE(top1, 0.99);
    } catch (const cv::Exception& e) {
      std::printf("OpenCV DNN cannot run the QDQ model %s: %s\n", f.path.c_str(),
                  std::string(e.what()).substr(0, 200).c_str());
    }
  }
  if (!checked) GTEST_SKIP() << "/usr/bin/python3 cannot import onnx: checker not run";
}

TEST_F(OnnxExport, SelectsBranchesByNameAndPareto) {
  std::unique_ptr<Bundle> bundle;
  ASSERT_TRUE(Bundle::open(bundle_path(), &bundle).ok());
  const auto pareto = exporter::select_onnx_branches(*bundle, "pareto");
  ASSERT_EQ(pareto.size(), 1u);
  EXPECT_EQ(pareto[0]->name, "main>full@1/2");
  const auto named = exporter::select_onnx_branches(*bundle, "shared,main>int8");
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0]->name, "shared");
  EXPECT_EQ(exporter::onnx_file_name("w1.00>dpconv@2/3>exit@2"), "w1.00+dpconv@2_3+exit@2");
}

TEST_F(OnnxExport, BadInputIsOneLineError) {
  std::unique_ptr<Bundle> bundle;
  ASSERT_TRUE(Bundle::open(bundle_path(), &bundle).ok());
  auto message = [](auto call) -> std::string {
    try {
      call();
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "(no error)";
  };
  std::string m = message([&] { exporter::select_onnx_branches(*bundle, "shared,nope"); });
  EXPECT_NE(m.find("no branch named 'nope'"), std::string::npos) << m;
  m = message([&] { exporter::export_onnx_files(*dir_ + "/missing.bundle", "all", *dir_, {}); });
  EXPECT_NE(m.find("missing.bundle"), std::string::npos) << m;
  // an op without an ONNX form, and an attribute value the exporter does not cover
  Branch bad = *bundle->find_branch("shared");
  bad.nodes.insert(bad.nodes.begin() + 2, make_node("gelu", {"c2"}, "g"));
  m = message(
      [&] { exporter::export_onnx_graph(bad, bundle->constants(), bundle->input(), {}, "m"); });
  EXPECT_NE(m.find("branch 'shared', node 'g' (op gelu)"), std::string::npos) << m;
  bad = *bundle->find_branch("shared");
  bad.nodes[1].attrs.set("dilation", std::vector<int64_t>{2, 2});
  m = message(
      [&] { exporter::export_onnx_graph(bad, bundle->constants(), bundle->input(), {}, "m"); });
  EXPECT_NE(m.find("node 'c2' (op conv2d): only dilation [1,1]"), std::string::npos) << m;
  for (const std::string& text : {m}) EXPECT_EQ(text.find('\n'), std::string::npos);
}

TEST_F(OnnxExport, CommandLine) {
  int status = 0;
  const std::string out_dir = *dir_ + "/cli";
  std::string out = run_cli("--format onnx --bundle " + bundle_path() +
                                " --branches 'shared,main>full@1/2' --out " + out_dir,
                            &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("shared: " + out_dir + "/shared.onnx, "), std::string::npos) << out;
  EXPECT_NE(out.find("nodes, opset 13"), std::string::npos) << out;
  EXPECT_NE(out.find("wrote 2 ONNX models"), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(out_dir + "/main+full@1_2.onnx"));
  out = run_cli("--format onnx --bundle " + bundle_path() + " --branches nope --out " + out_dir,
                &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("no branch named 'nope'"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  out = run_cli("--format onnx --bundle " + *dir_ + "/none.bundle --out " + out_dir, &status);
  EXPECT_NE(status, 0);
  out = run_cli("--bundle " + bundle_path() + " --out " + out_dir, &status);
  EXPECT_NE(status, 0) << "--bundle goes with --format onnx only";
}

}  // namespace
}  // namespace adascale
