// libFuzzer target for the bundle reader. Input layout: byte 0 flags, bytes 1..4 the catalog.json
// length (u32 little-endian, clamped to what is left), then catalog.json, then weights.bin.
// flags bit 0 rewrites the header's catalog CRC so mutated catalogs get past the checksum and
// reach the JSON and graph validation; bits 1..7 pick the branch that is prepared and run.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/backend.h"
#include "runtime/bundle.h"

namespace {

using namespace adascale;

// Reference kernels are plain loops; inputs whose activations or work would take long (a huge
// input shape is valid) are validated but not run, so every execution stays fast.
constexpr int64_t kMaxActivationBytes = 8 << 20;
constexpr int64_t kMaxWork = 20'000'000;

bool cheap_enough(const Branch& branch, const Bundle& bundle) {
  DerivedWeights derived;  // shapes only, as the bundle check sees shared weights
  if (!derive_weights(branch, bundle.constants(), false, &derived).ok()) return false;
  std::unordered_map<std::string, TensorInfo> infos;
  if (!infer_shapes(derived.branch, bundle.input().nhwc(), derived.constants, &infos).ok())
    return false;
  int64_t bytes = 0;
  for (const auto& kv : infos) {
    const int64_t elements = shape_elements(kv.second.shape);
    if (elements < 0 || elements > kMaxActivationBytes) return false;
    bytes += elements * 4;
    if (bytes > kMaxActivationBytes) return false;
  }
  int64_t work = 0;
  for (const Node& node : branch.nodes) {
    int64_t per_output = 1;
    for (const auto& slot : node.params) {
      const int64_t elements = shape_elements(bundle.constants().at(slot.second).shape);
      per_output = std::max(per_output, elements);
    }
    for (const char* key : {"kernel", "pool"}) {
      int64_t window = 1;
      for (int64_t v : node.attrs.get_ints(key, {})) window *= std::max<int64_t>(1, v);
      per_output = std::max(per_output, window);
    }
    int64_t inputs = 0;
    for (const std::string& in : node.inputs) inputs += shape_elements(infos.at(in).shape);
    const int64_t outputs = shape_elements(infos.at(node.output).shape);
    if (per_output > kMaxWork || outputs > kMaxWork / per_output) return false;
    work += outputs * per_output + inputs;
    if (work > kMaxWork) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  const uint8_t flags = data[0];
  const uint32_t catalog_bytes = uint32_t{data[1]} | uint32_t{data[2]} << 8 |
                                 uint32_t{data[3]} << 16 | uint32_t{data[4]} << 24;
  const size_t left = size - 5;
  const size_t n = std::min<size_t>(catalog_bytes, left);
  std::string catalog(reinterpret_cast<const char*>(data + 5), n);
  std::vector<uint8_t> weights(data + 5 + n, data + size);
  if ((flags & 1) && weights.size() >= kWeightsHeaderBytes) {
    const uint32_t crc = crc32(catalog.data(), catalog.size());
    std::memcpy(&weights[32], &crc, 4);
  }
  std::unique_ptr<Bundle> bundle;
  if (!Bundle::open_from_memory(std::move(catalog), std::move(weights), &bundle).ok()) return 0;

  // A bundle that opened must be fully usable: every branch infers, and one runs.
  const auto& branches = bundle->branches();
  if (branches.empty()) __builtin_trap();
  const Branch& branch = branches[(flags >> 1) % branches.size()];
  if (!cheap_enough(branch, *bundle)) return 0;
  std::unique_ptr<PreparedBranch> prepared;
  const Status s = make_reference_backend()->prepare(branch, bundle->constants(),
                                                     bundle->input().nhwc(), &prepared);
  if (!s.ok()) return 0;
  const int64_t batch = bundle->input().shape_nchw[0];
  std::vector<float> input(static_cast<size_t>(shape_elements(bundle->input().shape_nchw)), 0.0f);
  std::vector<float> output(static_cast<size_t>(batch * prepared->output_features()));
  if (!prepared->run(input.data(), batch, output.data(), output.size()).ok()) __builtin_trap();
  return 0;
}
