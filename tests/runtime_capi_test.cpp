// C API: open/select/run/close, error codes with messages, and the LRU branch cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "adascale.h"
#include "adascale.hpp"
#include "runtime_test_util.h"

namespace adascale {
namespace {

class CApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    BundleWriter writer;
    testing::build_small_model(&writer);
    path_ = new std::string(testing::temp_path("capi.bundle"));
    ASSERT_TRUE(writer.write(*path_).ok());
  }
  static std::string* path_;
};
std::string* CApiTest::path_ = nullptr;

TEST_F(CApiTest, OpenSelectRunClose) {
  adascale_runtime* rt = nullptr;
  ASSERT_EQ(adascale_open(path_->c_str(), &rt), ADASCALE_OK);
  size_t count = 0;
  ASSERT_EQ(adascale_branch_count(rt, &count), ADASCALE_OK);
  EXPECT_EQ(count, 3u);
  adascale_branch_info info;
  ASSERT_EQ(adascale_branch_info_at(rt, 0, &info), ADASCALE_OK);
  EXPECT_STREQ(info.name, "full");
  EXPECT_NE(std::strstr(info.costs_json, "12345"), nullptr);
  EXPECT_EQ(adascale_branch_info_at(rt, 9, &info), ADASCALE_ERROR_OUT_OF_RANGE);

  std::vector<float> image(3 * 8 * 8, 0.5f), logits(5, 0.0f);
  EXPECT_EQ(adascale_run(rt, image.data(), image.size(), logits.data(), logits.size()),
            ADASCALE_ERROR_NO_BRANCH_SELECTED);
  ASSERT_EQ(adascale_select(rt, "full"), ADASCALE_OK);
  ASSERT_EQ(adascale_run(rt, image.data(), image.size(), logits.data(), logits.size()), ADASCALE_OK)
      << adascale_last_error(rt);

  // The reference backend through the C API agrees, normalization and NCHW->NHWC included.
  adascale_runtime* ref = nullptr;
  ASSERT_EQ(adascale_open_ex(path_->c_str(), ADASCALE_BACKEND_REFERENCE, 1, &ref, nullptr, 0),
            ADASCALE_OK);
  ASSERT_EQ(adascale_select(ref, "full"), ADASCALE_OK);
  std::vector<float> expected(5);
  for (size_t i = 0; i < image.size(); ++i) image[i] = std::sin(0.1f * i);
  ASSERT_EQ(adascale_run(ref, image.data(), image.size(), expected.data(), 5), ADASCALE_OK);
  ASSERT_EQ(adascale_run(rt, image.data(), image.size(), logits.data(), 5), ADASCALE_OK);
  for (int i = 0; i < 5; ++i)
    EXPECT_NEAR(logits[i], expected[i], 1e-4f * (1 + std::fabs(expected[i])));

  // Two images in one call.
  std::vector<float> two(image);
  two.insert(two.end(), image.begin(), image.end());
  std::vector<float> two_logits(10);
  ASSERT_EQ(adascale_run(rt, two.data(), two.size(), two_logits.data(), 10), ADASCALE_OK);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(two_logits[5 + i], logits[i], 1e-5f);
  size_t arena = 0;
  EXPECT_EQ(adascale_selected_arena_bytes(rt, &arena), ADASCALE_OK);
  EXPECT_GT(arena, 0u);
  adascale_close(ref);
  adascale_close(rt);
}

TEST_F(CApiTest, ProfileTimesEveryNodeInGraphOrder) {
  adascale_runtime* rt = nullptr;
  ASSERT_EQ(adascale_open(path_->c_str(), &rt), ADASCALE_OK);
  size_t count = 0;
  EXPECT_EQ(adascale_profile(rt, 3, nullptr, 0, &count), ADASCALE_ERROR_NO_BRANCH_SELECTED);
  ASSERT_EQ(adascale_select(rt, "full"), ADASCALE_OK);
  EXPECT_EQ(adascale_profile(rt, 0, nullptr, 0, &count), ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(adascale_profile(rt, 3, nullptr, 0, nullptr), ADASCALE_ERROR_INVALID_ARGUMENT);
  // capacity 0 asks for the count only
  ASSERT_EQ(adascale_profile(rt, 1, nullptr, 0, &count), ADASCALE_OK) << adascale_last_error(rt);
  ASSERT_EQ(count, 10u);  // the nodes of "full" (runtime_test_util.h)
  std::vector<adascale_node_timing> t(count);
  ASSERT_EQ(adascale_profile(rt, 5, t.data(), t.size(), &count), ADASCALE_OK);
  const char* outputs[] = {"c1", "bn", "r1", "c2", "res", "mp", "gap", "flat", "fc", "logits"};
  double total = 0;
  for (size_t i = 0; i < count; ++i) {
    EXPECT_STREQ(t[i].output, outputs[i]);
    EXPECT_STREQ(t[i].dtype, "f32");
    EXPECT_GE(t[i].median_us, 0.0);
    total += t[i].median_us;
  }
  EXPECT_GT(total, 0.0);
  EXPECT_STREQ(t[0].layer, "conv 3x3");
  EXPECT_STREQ(t[0].op, "conv2d");
  EXPECT_STREQ(t[4].layer, "add");
  EXPECT_STREQ(t[8].layer, "fully connected");
  EXPECT_STREQ(t[0].kernel, "xnnpack");  // fp32: no architecture kernel
  // a smaller capacity truncates the list but still reports the full count
  std::vector<adascale_node_timing> two(2);
  ASSERT_EQ(adascale_profile(rt, 1, two.data(), two.size(), &count), ADASCALE_OK);
  EXPECT_EQ(count, 10u);
  EXPECT_STREQ(two[1].output, "bn");
  adascale_close(rt);
}

TEST_F(CApiTest, ErrorsCarryCodesAndMessages) {
  adascale_runtime* rt = nullptr;
  char message[256] = {0};
  EXPECT_EQ(adascale_open_ex("/nonexistent.bundle", ADASCALE_BACKEND_XNNPACK, 1, &rt, message,
                             sizeof(message)),
            ADASCALE_ERROR_IO);
  EXPECT_EQ(rt, nullptr);
  EXPECT_GT(std::strlen(message), 0u);
  EXPECT_EQ(adascale_open_ex(path_->c_str(), static_cast<adascale_backend>(7), 1, &rt, message,
                             sizeof(message)),
            ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(message, "unknown backend 7");
  EXPECT_EQ(rt, nullptr);

  ASSERT_EQ(adascale_open(path_->c_str(), &rt), ADASCALE_OK);
  EXPECT_EQ(adascale_select(rt, "no-such-branch"), ADASCALE_ERROR_NOT_FOUND);
  EXPECT_NE(std::strstr(adascale_last_error(rt), "no-such-branch"), nullptr);
  ASSERT_EQ(adascale_select(rt, "early"), ADASCALE_OK);
  std::vector<float> image(3 * 8 * 8 - 1, 0.5f), logits(5);
  EXPECT_EQ(adascale_run(rt, image.data(), image.size(), logits.data(), 5),
            ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(adascale_last_error(rt), "whole number of images"), nullptr);
  image.push_back(0.5f);
  EXPECT_EQ(adascale_run(rt, image.data(), image.size(), logits.data(), 4),
            ADASCALE_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(adascale_last_error(rt), "capacity"), nullptr);
  EXPECT_EQ(adascale_run(rt, nullptr, 0, logits.data(), 5), ADASCALE_ERROR_INVALID_ARGUMENT);
  adascale_close(rt);
}

TEST_F(CApiTest, LruCacheEvictsUnderBudget) {
  adascale_runtime* rt = nullptr;
  ASSERT_EQ(adascale_open(path_->c_str(), &rt), ADASCALE_OK);
  size_t bytes[3] = {0, 0, 0}, count = 0, total = 0;
  const char* names[3] = {"full", "early", "int8"};
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(adascale_select(rt, names[i]), ADASCALE_OK) << adascale_last_error(rt);
    size_t before = total;
    adascale_cache_info(rt, &count, &total);
    bytes[i] = total - before;
    EXPECT_EQ(count, static_cast<size_t>(i + 1));
  }
  // Budget for the two most recent: selecting "full" again evicts "early", the LRU one.
  ASSERT_EQ(adascale_set_memory_budget(rt, bytes[1] + bytes[2]), ADASCALE_OK);
  adascale_cache_info(rt, &count, &total);
  EXPECT_EQ(count, 2u);
  EXPECT_FALSE(adascale_is_cached(rt, "full"));
  ASSERT_EQ(adascale_select(rt, "early"), ADASCALE_OK);  // cached: cheap switch
  EXPECT_TRUE(adascale_is_cached(rt, "int8"));
  ASSERT_EQ(adascale_set_memory_budget(rt, bytes[0] + bytes[1]), ADASCALE_OK);
  ASSERT_EQ(adascale_select(rt, "full"), ADASCALE_OK);
  EXPECT_TRUE(adascale_is_cached(rt, "full"));
  EXPECT_TRUE(adascale_is_cached(rt, "early"));
  EXPECT_FALSE(adascale_is_cached(rt, "int8"));
  // A tiny budget keeps only the selected branch, which still runs.
  ASSERT_EQ(adascale_set_memory_budget(rt, 1), ADASCALE_OK);
  adascale_cache_info(rt, &count, &total);
  EXPECT_EQ(count, 1u);
  EXPECT_TRUE(adascale_is_cached(rt, "full"));
  std::vector<float> image(3 * 8 * 8, 0.5f), logits(5);
  EXPECT_EQ(adascale_run(rt, image.data(), image.size(), logits.data(), 5), ADASCALE_OK);
  adascale_close(rt);
}

TEST_F(CApiTest, CppWrapper) {
  Runtime rt(*path_);
  EXPECT_EQ(rt.branch_names().size(), 3u);
  rt.select("int8");
  const auto logits = rt.run(std::vector<float>(2 * 3 * 8 * 8, 0.25f), 5);
  EXPECT_EQ(logits.size(), 10u);
  EXPECT_THROW(rt.select("nope"), Error);
  EXPECT_THROW(Runtime("/nonexistent.bundle"), Error);
}

}  // namespace
}  // namespace adascale
