// Bundle format v1 (docs/bundle-format.md): a directory X.bundle/ holding catalog.json and
// weights.bin. BundleWriter builds one atomically; Bundle maps one read-only and validates it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/graph.h"

namespace adascale {

// 2 added shared weights (weight_slice / weight_mul, graph.h), 3 int8 weights quantized at
// preparation (weight_quantize), 4 slices by halves (weight_slice_halves); older bundles read
// unchanged
constexpr int kBundleSchemaVersion = 4;
constexpr int kOldestBundleSchemaVersion = 1;
constexpr uint32_t kWeightsVersion = 1;
constexpr size_t kWeightsHeaderBytes = 64;
constexpr size_t kWeightsAlignment = 64;

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), same value as zlib's crc32().
uint32_t crc32(const void* data, size_t bytes, uint32_t crc = 0);

struct BundleInput {
  Shape shape_nchw;         // as seen by users, batch first
  std::vector<float> mean;  // per channel; empty means 0
  std::vector<float> std;   // per channel; empty means 1
  Shape nhwc() const { return {shape_nchw[0], shape_nchw[2], shape_nchw[3], shape_nchw[1]}; }
};

class BundleWriter {
 public:
  void set_model_name(const std::string& name) { model_name_ = name; }
  void set_input(const Shape& shape_nchw, std::vector<float> mean, std::vector<float> std);
  void set_classes(std::vector<std::string> classes) { classes_ = std::move(classes); }
  // Copies the data; its size is shape elements x dtype size. Names are unique.
  Status add_tensor(const std::string& name, DType dtype, const Shape& shape, const void* data);
  Status add_f32(const std::string& name, const Shape& shape, const std::vector<float>& values);
  Status add_i8(const std::string& name, const Shape& shape, const std::vector<int8_t>& values);
  Status add_i32(const std::string& name, const Shape& shape, const std::vector<int32_t>& values);
  // Validates the graph against the tensors added so far and the input description.
  Status add_branch(const Branch& branch);
  // Writes `path` (a directory, conventionally ending in .bundle) via a temporary sibling
  // directory and a rename, so readers never see a half-written bundle.
  Status write(const std::string& path) const;
  // The tensors added so far, e.g. to profile a branch through a Backend before writing.
  const ConstantMap& constants() const { return constants_; }

 private:
  std::string model_name_ = "model";
  BundleInput input_;
  std::vector<std::string> classes_;
  std::vector<std::string> tensor_order_;
  std::map<std::string, std::vector<uint8_t>> tensor_data_;
  ConstantMap constants_;
  std::vector<Branch> branches_;
};

class Bundle {
 public:
  // Never crashes or reads out of bounds on corrupt input: every problem becomes a Status.
  static Status open(const std::string& path, std::unique_ptr<Bundle>* out);
  // Same validation on in-memory copies of catalog.json and weights.bin (the bundle keeps them);
  // for bundles that do not live in a file system, and for fuzzing.
  static Status open_from_memory(std::string catalog_json, std::vector<uint8_t> weights,
                                 std::unique_ptr<Bundle>* out);
  ~Bundle();
  Bundle(const Bundle&) = delete;
  Bundle& operator=(const Bundle&) = delete;

  const std::string& model_name() const { return model_name_; }
  const BundleInput& input() const { return input_; }
  const std::vector<std::string>& classes() const { return classes_; }
  const std::vector<Branch>& branches() const { return branches_; }
  const Branch* find_branch(const std::string& name) const;
  const ConstantMap& constants() const { return constants_; }
  size_t weights_file_bytes() const { return map_bytes_; }

 private:
  Bundle() = default;
  Status load(const std::string& path);
  // Validates the catalog against weights.bin at [base, base + size).
  Status parse(const std::string& catalog_text, const uint8_t* base, size_t size);

  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  std::vector<uint8_t> owned_weights_;  // open_from_memory only
  std::string model_name_;
  BundleInput input_;
  std::vector<std::string> classes_;
  std::vector<Branch> branches_;
  ConstantMap constants_;
};

}  // namespace adascale
