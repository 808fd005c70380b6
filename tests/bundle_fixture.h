// A written copy of the runtime tests' small bundle, and edits of it that keep it sealed (the
// catalog checksum recomputed), so that tests reach the reader's semantic checks.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "runtime_test_util.h"

namespace adascale::testing {

inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void dump(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

class BundleFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    build_small_model(&writer);
    path = temp_path(std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
                     ".bundle");
    ASSERT_TRUE(writer.write(path).ok());
  }
  Status open() {
    std::unique_ptr<Bundle> bundle;
    return Bundle::open(path, &bundle);
  }
  // writes catalog text as is and re-seals its checksum
  void reseal(const std::string& text) {
    dump(std::filesystem::path(path) / "catalog.json", text);
    std::string weights = slurp(std::filesystem::path(path) / "weights.bin");
    const uint32_t crc = crc32(text.data(), text.size());
    std::memcpy(&weights[32], &crc, 4);
    dump(std::filesystem::path(path) / "weights.bin", weights);
  }
  // an edit of the pristine bundle's catalog
  void edit_catalog(const std::function<void(nlohmann::json&)>& edit) {
    ASSERT_TRUE(writer.write(path).ok());
    nlohmann::json catalog =
        nlohmann::json::parse(slurp(std::filesystem::path(path) / "catalog.json"));
    edit(catalog);
    reseal(catalog.dump(1));
  }
  void expect_error(ErrorCode code, const std::string& needle) {
    const Status s = open();
    EXPECT_EQ(s.code, code) << s.message;
    EXPECT_NE(s.message.find(needle), std::string::npos) << s.message;
    EXPECT_EQ(s.message.find('\n'), std::string::npos) << "message must be one line";
  }
  BundleWriter writer;
  std::string path;
};

}  // namespace adascale::testing
