// adascale-run end to end: generated bundles, IDX (plain and gzip) and PNG fixtures, and the
// one-line error contract for bad input.
#include <gtest/gtest.h>
#include <png.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "adascale.h"
#include "tests/command_result.h"
#include "tests/runtime_test_util.h"

namespace adascale {
namespace {

namespace fs = std::filesystem;
using testing::make_node;
using testing::random_floats;
using testing::temp_path;

using Result = testing::CommandResult;

Result run_cli(const std::string& args) {
  return testing::run_command(std::string(ADASCALE_RUN_CLI) + " " + args);
}

// Runs the CLI directly (no shell), so that its peak resident memory is its own.
struct Measured {
  int code = -1;
  std::string output;
  long max_rss_mib = -1;
};

Measured run_measured(const std::vector<std::string>& args) {
  Measured m;
  int fds[2];
  if (::pipe(fds) != 0) return m;
  const pid_t pid = ::fork();
  if (pid < 0) return m;
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> argv{const_cast<char*>(ADASCALE_RUN_CLI)};
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execv(ADASCALE_RUN_CLI, argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  char buffer[4096];
  ssize_t got;
  while ((got = ::read(fds[0], buffer, sizeof(buffer))) > 0)
    m.output.append(buffer, static_cast<size_t>(got));
  ::close(fds[0]);
  int status = 0;
  struct rusage usage {};
  if (::wait4(pid, &status, 0, &usage) != pid) return m;
  m.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  m.max_rss_mib = usage.ru_maxrss / 1024;
  return m;
}

void expect_one_line_error(const Result& r) {
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("adascale-run: error: ", 0), 0u) << r.output;
  ASSERT_FALSE(r.output.empty());
  EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << "not one line: " << r.output;
}

// A 1x1x8x8 grayscale model with three classes and two branches.
std::string gray_bundle() {
  static const std::string path = [] {
    std::mt19937 rng(3);
    BundleWriter w;
    w.set_model_name("gray");
    w.set_input({1, 1, 8, 8}, {0.5f}, {0.25f});
    w.set_classes({"zero", "one", "two"});
    w.add_f32("c.w", {6, 3, 3, 1}, random_floats(rng, 54, -1.0f, 1.0f));
    w.add_f32("c.b", {6}, random_floats(rng, 6, -0.1f, 0.1f));
    w.add_f32("fc.w", {3, 6}, random_floats(rng, 18, -1.0f, 1.0f));
    w.add_f32("fc2.w", {3, 6}, random_floats(rng, 18, -1.0f, 1.0f));
    for (const char* fc : {"fc.w", "fc2.w"}) {
      Branch b;
      b.name = std::string("g-") + fc;
      b.output = "logits";
      b.costs_json = R"({"macs":3456,"latency_ms":{"median":0.01,"p90":0.02},"accuracy":0.5})";
      b.nodes = adascale::testing::small_classifier("c.w", "c.b", fc);
      EXPECT_TRUE(w.add_branch(b).ok());
    }
    const std::string p = temp_path("cli_gray.bundle");
    EXPECT_TRUE(w.write(p).ok());
    return p;
  }();
  return path;
}

std::string rgb_bundle() {
  static const std::string path = [] {
    BundleWriter w;
    testing::build_small_model(&w);
    const std::string p = temp_path("cli_rgb.bundle");
    EXPECT_TRUE(w.write(p).ok());
    return p;
  }();
  return path;
}

// Argmax of the branch on NCHW images of raw bytes (scaled to [0,1] as the CLI does).
std::vector<uint8_t> predict(const std::string& bundle, const std::string& branch,
                             const std::vector<uint8_t>& nchw, size_t image, size_t classes) {
  adascale_runtime* rt = nullptr;
  EXPECT_EQ(adascale_open_ex(bundle.c_str(), ADASCALE_BACKEND_XNNPACK, 1, &rt, nullptr, 0),
            ADASCALE_OK);
  EXPECT_EQ(adascale_select(rt, branch.c_str()), ADASCALE_OK);
  std::vector<uint8_t> labels;
  std::vector<float> input(image), logits(classes);
  for (size_t n = 0; n < nchw.size() / image; ++n) {
    for (size_t i = 0; i < image; ++i) input[i] = nchw[n * image + i] / 255.0f;
    EXPECT_EQ(adascale_run(rt, input.data(), image, logits.data(), classes), ADASCALE_OK);
    labels.push_back(
        static_cast<uint8_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  }
  adascale_close(rt);
  return labels;
}

std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims,
                               const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out{0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(d >> shift));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string write_file(const std::string& name, const std::vector<uint8_t>& bytes) {
  const std::string path = temp_path(name);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  return path;
}

std::string write_gz(const std::string& name, const std::vector<uint8_t>& bytes) {
  const std::string path = temp_path(name);
  gzFile f = gzopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr);
  EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  gzclose(f);
  return path;
}

// Interleaved (HWC) 8-bit pixels; channels 1 or 3.
void write_png(const fs::path& path, int width, int height, int channels,
               const std::vector<uint8_t>& hwc) {
  fs::create_directories(path.parent_path());
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  ASSERT_TRUE(png_image_write_to_file(&image, path.c_str(), 0, hwc.data(), 0, nullptr))
      << image.message;
}

std::vector<uint8_t> random_bytes(std::mt19937& rng, size_t count) {
  std::uniform_int_distribution<int> dist(0, 255);
  std::vector<uint8_t> out(count);
  for (uint8_t& v : out) v = static_cast<uint8_t>(dist(rng));
  return out;
}

std::string q(const std::string& path) { return "'" + path + "'"; }

TEST(RuntimeCli, HelpAndVersionExitZero) {
  Result r = run_cli("--help");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("usage: adascale-run --bundle DIR [options]\n", 0), 0u) << r.output;
  for (const char* option :
       {"--bundle", "--branch", "--images", "--idx", "--labels", "--backend", "--threads",
        "--limit", "--list", "--profile", "--scenario", "--policy", "--trace-out", "--version"})
    EXPECT_NE(r.output.find(std::string("\n  ") + option + " "), std::string::npos)
        << option << " missing in\n"
        << r.output;
  EXPECT_EQ(run_cli("--bundle x --bogus -h").output, r.output);  // help wins over mistakes
  r = run_cli("--version");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, std::string("adascale-run ") + ADASCALE_VERSION + "\n");
}

// Usage mistakes exit with 2, failures of the run itself with 1.
TEST(RuntimeCli, UsageMistakesExitTwo) {
  const std::string gray = "--bundle " + q(gray_bundle());
  for (const std::string& args :
       {std::string("--idx x.idx"), gray + " --idx x.idx --bogus", gray + " --idx",
        gray + " --list --list", gray + " --idx x.idx --threads 2x",
        gray + " --idx x.idx --backend gpu", gray + " --idx x.idx --images dir",
        gray + " --profile 3 --limit 5", gray + " --idx x.idx --policy adaptive"}) {
    const Result r = run_cli(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    expect_one_line_error(r);
    EXPECT_NE(r.output.find(" (see --help)\n"), std::string::npos) << r.output;
  }
  EXPECT_EQ(run_cli("--bundle x --idx" /* missing value */).output,
            "adascale-run: error: --idx needs a value (see --help)\n");
  const Result r = run_cli(gray + " --idx /nonexistent.idx");
  EXPECT_EQ(r.code, 1) << r.output;
}

TEST(RuntimeCli, ListPrintsBranchesWithCatalogCosts) {
  const Result r = run_cli("--bundle " + q(rgb_bundle()) + " --list");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* text :
       {"3 branches", "full", "early", "int8", "macs", "latency_ms.median", "12345", "2000"})
    EXPECT_NE(r.output.find(text), std::string::npos) << text << " missing in\n" << r.output;
}

TEST(RuntimeCli, IdxAccuracyAgreesWithTheCApi) {
  std::mt19937 rng(11);
  const size_t count = 24, image = 64;
  const std::vector<uint8_t> pixels = random_bytes(rng, count * image);
  const std::vector<uint8_t> labels = predict(gray_bundle(), "g-fc2.w", pixels, image, 3);
  const std::string images = write_file("cli_images.idx", idx_bytes({24, 8, 8}, pixels));
  const std::string right = write_file("cli_labels.idx", idx_bytes({24}, labels));
  std::vector<uint8_t> shifted = labels;
  for (uint8_t& l : shifted) l = static_cast<uint8_t>((l + 1) % 3);
  const std::string wrong = write_file("cli_wrong.idx", idx_bytes({24}, shifted));

  const std::string base = "--bundle " + q(gray_bundle()) + " --branch g-fc2.w --idx " + q(images);
  Result r = run_cli(base + " --labels " + q(right));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("accuracy    100.00% (24/24)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("latency     median"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("images/s"), std::string::npos) << r.output;

  r = run_cli(base + " --labels " + q(wrong));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("accuracy    0.00% (0/24)"), std::string::npos) << r.output;

  r = run_cli(base + " --labels " + q(right) + " --backend reference --threads 2 --limit 5");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("accuracy    100.00% (5/5)"), std::string::npos) << r.output;

  r = run_cli(base);  // no labels: timing only
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("n/a (no labels)"), std::string::npos) << r.output;
}

TEST(RuntimeCli, ReadsGzipIdx) {
  std::mt19937 rng(12);
  const std::vector<uint8_t> pixels = random_bytes(rng, 10 * 64);
  const std::vector<uint8_t> labels = predict(gray_bundle(), "g-fc.w", pixels, 64, 3);
  const std::string images = write_gz("cli_images.idx.gz", idx_bytes({10, 8, 8}, pixels));
  const std::string gz_labels = write_gz("cli_labels.idx.gz", idx_bytes({10}, labels));
  const Result r =
      run_cli("--bundle " + q(gray_bundle()) + " --idx " + q(images) + " --labels " + q(gz_labels));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("branch      g-fc.w"), std::string::npos) << r.output;  // the first one
  EXPECT_NE(r.output.find("accuracy    100.00% (10/10)"), std::string::npos) << r.output;
}

TEST(RuntimeCli, PngFolderWithResizeAndChannelConversion) {
  // Constant images survive resizing and gray -> RGB exactly, so the expected class is known.
  const fs::path dir = temp_path("cli_png");
  fs::remove_all(dir);
  const std::vector<uint8_t> values{30, 200, 90, 255};
  std::vector<uint8_t> nchw;
  for (uint8_t v : values) nchw.insert(nchw.end(), 3 * 64, v);
  const std::vector<uint8_t> labels = predict(rgb_bundle(), "full", nchw, 3 * 64, 5);
  const std::vector<std::string> classes{"a", "b", "c", "d", "e"};
  for (size_t i = 0; i < values.size(); ++i) {
    const fs::path folder = dir / classes[labels[i]];
    if (i == 0) write_png(folder / "x0.png", 8, 8, 3, std::vector<uint8_t>(192, values[i]));
    if (i == 1) write_png(folder / "x1.PNG", 16, 12, 3, std::vector<uint8_t>(576, values[i]));
    if (i == 2) write_png(folder / "x2.png", 8, 8, 1, std::vector<uint8_t>(64, values[i]));
    if (i == 3) write_png(folder / "x3.png", 5, 7, 1, std::vector<uint8_t>(35, values[i]));
  }
  std::ofstream(dir / "a" / "notes.txt") << "ignored";
  const Result r =
      run_cli("--bundle " + q(rgb_bundle()) + " --branch full --images " + q(dir.string()));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("images      4 (3x8x8 CxHxW)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("accuracy    100.00% (4/4)"), std::string::npos) << r.output;
}

TEST(RuntimeCli, ProfilePrintsEveryNodeAndEveryLayerType) {
  const Result r = run_cli("--bundle " + q(rgb_bundle()) + " --branch full --profile 3");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* text : {"node (output)", "conv 3x3", "fully connected", "layer type",
                           "total (sum of medians)", "medians of 3 runs"})
    EXPECT_NE(r.output.find(text), std::string::npos) << text << "\n" << r.output;
  expect_one_line_error(run_cli("--bundle " + q(rgb_bundle()) + " --profile 0"));
  expect_one_line_error(
      run_cli("--bundle " + q(rgb_bundle()) + " --profile 3 --idx /nonexistent/images"));
  expect_one_line_error(run_cli("--bundle " + q(rgb_bundle()) + " --profile 3 --limit 5"));
  expect_one_line_error(run_cli("--bundle " + q(rgb_bundle()) + " --profile 1000001"));
}

TEST(RuntimeCli, BadInputGivesOneLineErrorAndNonZeroExit) {
  std::mt19937 rng(13);
  const std::string gray = "--bundle " + q(gray_bundle());
  const std::string images = write_file("cli_ok.idx", idx_bytes({4, 8, 8}, random_bytes(rng, 256)));
  expect_one_line_error(run_cli("--bundle /nonexistent/x.bundle --list"));
  expect_one_line_error(run_cli(gray + " --branch nope --idx " + q(images)));
  expect_one_line_error(run_cli(gray));  // no input
  expect_one_line_error(run_cli(gray + " --idx " + q(images) + " --threads 0"));
  expect_one_line_error(run_cli(gray + " --idx " + q(images) + " --backend gpu"));
  expect_one_line_error(run_cli(gray + " --idx " + q(images) + " --bogus"));
  expect_one_line_error(run_cli(gray + " --idx /nonexistent.idx"));
  // wrong size, wrong channels, truncated, not IDX, label count and range
  expect_one_line_error(
      run_cli(gray + " --idx " +
              q(write_file("cli_16.idx", idx_bytes({2, 16, 16}, random_bytes(rng, 512))))));
  expect_one_line_error(
      run_cli(gray + " --idx " +
              q(write_file("cli_c3.idx", idx_bytes({2, 8, 8, 3}, random_bytes(rng, 384))))));
  expect_one_line_error(run_cli("--bundle " + q(rgb_bundle()) + " --idx " +
                                q(images)));  // 1 channel for a 3-channel model
  std::vector<uint8_t> truncated = idx_bytes({4, 8, 8}, random_bytes(rng, 256));
  truncated.resize(truncated.size() - 10);
  expect_one_line_error(run_cli(gray + " --idx " + q(write_file("cli_trunc.idx", truncated))));
  expect_one_line_error(
      run_cli(gray + " --idx " + q(write_file("cli_junk.idx", random_bytes(rng, 100)))));
  std::vector<uint8_t> gz_truncated;
  {
    const std::string full =
        write_gz("cli_full.idx.gz", idx_bytes({4, 8, 8}, random_bytes(rng, 256)));
    std::ifstream in(full, std::ios::binary);
    gz_truncated.assign(std::istreambuf_iterator<char>(in), {});
    gz_truncated.resize(gz_truncated.size() / 2);
  }
  expect_one_line_error(
      run_cli(gray + " --idx " + q(write_file("cli_trunc.idx.gz", gz_truncated))));
  expect_one_line_error(run_cli(gray + " --idx " + q(images) + " --labels " +
                                q(write_file("cli_l3.idx", idx_bytes({3}, {0, 1, 2})))));
  expect_one_line_error(run_cli(gray + " --idx " + q(images) + " --labels " +
                                q(write_file("cli_l9.idx", idx_bytes({4}, {0, 1, 2, 9})))));

  // PNG folders: unknown class folder, corrupt file, empty folder
  const fs::path dir = temp_path("cli_bad_png");
  fs::remove_all(dir);
  write_png(dir / "zebra" / "x.png", 8, 8, 1, std::vector<uint8_t>(64, 1));
  expect_one_line_error(run_cli(gray + " --images " + q(dir.string())));
  fs::remove_all(dir);
  fs::create_directories(dir / "one");
  std::ofstream(dir / "one" / "x.png") << "definitely not a png";
  expect_one_line_error(run_cli(gray + " --images " + q(dir.string())));
  fs::remove_all(dir);
  write_png(dir / "one" / "x.png", 8, 8, 1, std::vector<uint8_t>(64, 1));
  std::vector<uint8_t> png;
  {
    std::ifstream in(dir / "one" / "x.png", std::ios::binary);
    png.assign(std::istreambuf_iterator<char>(in), {});
  }
  png.resize(png.size() - 20);  // cut into the image data
  std::ofstream(dir / "one" / "x.png", std::ios::binary)
      .write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  expect_one_line_error(run_cli(gray + " --images " + q(dir.string())));
  fs::remove_all(dir);
  fs::create_directories(dir);
  expect_one_line_error(run_cli(gray + " --images " + q(dir.string())));
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// A resident size far below what the hostile headers below claim (320 MB, 192 MB) and far above
// what the CLI needs for the small fixtures.
constexpr long kSmallRssMib = 128;

TEST(RuntimeCli, IdxHeaderClaimsAreCheckedBeforeAllocating) {
  std::mt19937 rng(21);
  const std::string images =
      write_file("cli_claims_ok.idx", idx_bytes({4, 8, 8}, random_bytes(rng, 256)));
  // 16 bytes claiming 5,000,000 images of 8x8: refused before the 320 MB are allocated.
  const std::string huge = write_file("cli_claims_huge.idx", idx_bytes({5000000, 8, 8}, {}));
  ASSERT_EQ(fs::file_size(huge), 16u);
  const Measured m = run_measured({"--bundle", gray_bundle(), "--idx", huge});
  EXPECT_EQ(m.code, 1);
  EXPECT_EQ(m.output, "adascale-run: error: IDX file '" + huge +
                          "': header field count = 5000000 (x 8 x 8) needs 320000000 bytes of "
                          "data, the file has 0 (truncated)\n");
  EXPECT_LT(m.max_rss_mib, kSmallRssMib);

  const std::string gray = "--bundle " + q(gray_bundle()) + " --idx ";
  // the same for a labels file, checked before either file's data is read
  const std::string labels = write_file("cli_claims_labels.idx", idx_bytes({5000000}, {}));
  Result r = run_cli(gray + q(images) + " --labels " + q(labels));
  EXPECT_EQ(r.output, "adascale-run: error: IDX file '" + labels +
                          "': header field count = 5000000 needs 5000000 bytes of data, the file "
                          "has 0 (truncated)\n");
  // more data than claimed
  std::vector<uint8_t> longer = idx_bytes({4, 8, 8}, random_bytes(rng, 266));
  r = run_cli(gray + q(write_file("cli_claims_long.idx", longer)));
  EXPECT_NE(r.output.find("': header field count = 4 (x 8 x 8) needs 256 bytes of data, the file "
                          "has 266 (trailing bytes)\n"),
            std::string::npos)
      << r.output;
  expect_one_line_error(r);
  // a zero count, and dimensions whose product wraps around 64 bits to 64 bytes
  const std::string empty = write_file("cli_claims_zero.idx", idx_bytes({0, 8, 8}, {}));
  r = run_cli(gray + q(empty));
  EXPECT_EQ(r.output, "adascale-run: error: IDX file '" + empty + "': header field count is 0\n");
  const std::string wraps =
      write_file("cli_claims_wrap.idx", idx_bytes({1, 536903681u, 536838145u, 64}, {}));
  r = run_cli(gray + q(wraps));
  EXPECT_EQ(r.output, "adascale-run: error: IDX file '" + wraps +
                          "': header field rows = 536903681 makes the data size overflow 64 "
                          "bits\n");
  // label count against the images' header count, whatever --limit reads
  r = run_cli(gray + q(images) + " --limit 2 --labels " +
              q(write_file("cli_claims_l5.idx", idx_bytes({5}, {0, 1, 2, 0, 1}))));
  EXPECT_NE(r.output.find("' has 5 labels for 4 images\n"), std::string::npos) << r.output;
  expect_one_line_error(r);
  // a folder is not an IDX file
  r = run_cli(gray + q(fs::path(images).parent_path().string()));
  EXPECT_NE(r.output.find("' is not a regular file\n"), std::string::npos) << r.output;
  expect_one_line_error(r);
}

TEST(RuntimeCli, GzipIdxIsBoundedByItsHeaderClaim) {
  std::mt19937 rng(22);
  const std::string gray = "--bundle " + q(gray_bundle()) + " --idx ";
  // a claim no gzip file of this size can expand to: refused before reading
  const std::string bomb = write_gz("cli_gz_claim.idx.gz", idx_bytes({5000000, 8, 8}, {}));
  const Measured m = run_measured({"--bundle", gray_bundle(), "--idx", bomb});
  EXPECT_EQ(m.code, 1);
  EXPECT_EQ(m.output, "adascale-run: error: IDX file '" + bomb +
                          "': header field count = 5000000 (x 8 x 8) needs 320000000 bytes of "
                          "data, more than a gzip file of " +
                          std::to_string(fs::file_size(bomb)) + " bytes can hold\n");
  EXPECT_LT(m.max_rss_mib, kSmallRssMib);
  // a plausible claim whose stream ends early
  const std::string shorter =
      write_gz("cli_gz_short.idx.gz", idx_bytes({1000, 8, 8}, random_bytes(rng, 256)));
  Result r = run_cli(gray + q(shorter));
  EXPECT_EQ(r.output, "adascale-run: error: IDX file '" + shorter +
                          "': the gzip stream ends after 256 of the 64000 bytes of data that "
                          "header field count = 1000 (x 8 x 8) claims (truncated)\n");
  // a stream that goes past the claim
  const std::string longer =
      write_gz("cli_gz_long.idx.gz", idx_bytes({4, 8, 8}, random_bytes(rng, 300)));
  r = run_cli(gray + q(longer));
  EXPECT_EQ(r.output, "adascale-run: error: IDX file '" + longer +
                          "': the gzip stream holds more than the 256 bytes of data that header "
                          "field count = 4 (x 8 x 8) claims\n");
  // an exact one still reads, also with --limit
  const std::string exact =
      write_gz("cli_gz_exact.idx.gz", idx_bytes({4, 8, 8}, random_bytes(rng, 256)));
  r = run_cli(gray + q(exact) + " --limit 3");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("images      3 (1x8x8 CxHxW)"), std::string::npos) << r.output;
}

// An 8x8 gray PNG whose header then claims width x height (CRC fixed, data unchanged).
void write_png_claiming(const fs::path& path, uint32_t width, uint32_t height) {
  write_png(path, 8, 8, 1, std::vector<uint8_t>(64, 7));
  std::vector<uint8_t> png = read_bytes(path.string());
  ASSERT_GT(png.size(), 33u);
  ASSERT_EQ(std::string(png.begin() + 12, png.begin() + 16), "IHDR");
  for (int i = 0; i < 4; ++i) {
    png[16 + i] = static_cast<uint8_t>(width >> (24 - 8 * i));
    png[20 + i] = static_cast<uint8_t>(height >> (24 - 8 * i));
  }
  const uLong crc = ::crc32(0, png.data() + 12, 17);
  for (int i = 0; i < 4; ++i) png[29 + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
}

TEST(RuntimeCli, PngHeaderClaimsAreCheckedBeforeDecoding) {
  const fs::path dir = temp_path("cli_png_claims");
  const std::string rgb = "--bundle " + q(rgb_bundle()) + " --images " + q(dir.string());
  // 8000 x 8000 (within the old limit): refused before 192 MB of pixels are allocated
  fs::remove_all(dir);
  write_png_claiming(dir / "big.png", 8000, 8000);
  const Measured m = run_measured({"--bundle", rgb_bundle(), "--images", dir.string()});
  EXPECT_EQ(m.code, 1);
  EXPECT_EQ(m.output, "adascale-run: error: PNG '" + (dir / "big.png").string() +
                          "': header fields width = 8000, height = 8000 are outside the limits "
                          "(1 to 16384 a side, 33554432 pixels)\n");
  EXPECT_LT(m.max_rss_mib, kSmallRssMib);
  fs::remove_all(dir);
  write_png_claiming(dir / "wide.png", 20000, 1);
  Result r = run_cli(rgb);
  EXPECT_NE(r.output.find("': header fields width = 20000, height = 1 are outside the limits"),
            std::string::npos)
      << r.output;
  expect_one_line_error(r);
  // within the limits, but more than the file can hold
  fs::remove_all(dir);
  write_png_claiming(dir / "tall.png", 5000, 5000);
  const std::string tall = (dir / "tall.png").string();
  r = run_cli(rgb);
  EXPECT_EQ(r.output, "adascale-run: error: PNG '" + tall +
                          "': header fields width = 5000, height = 5000 claim more pixels than a "
                          "file of " +
                          std::to_string(fs::file_size(tall)) + " bytes can hold\n");
}

}  // namespace
}  // namespace adascale
