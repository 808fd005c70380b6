#include "fuzz/exercise_bundle.h"

#include <algorithm>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/backend.h"

namespace adascale::fuzz {

namespace {

// reference kernels are plain loops: a valid but huge input shape is not run
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

void exercise_bundle(const Bundle& bundle, uint8_t pick) {
  const auto& branches = bundle.branches();
  if (branches.empty()) __builtin_trap();
  const Branch& branch = branches[pick % branches.size()];
  if (!cheap_enough(branch, bundle)) return;
  std::unique_ptr<PreparedBranch> prepared;
  const Status s = make_reference_backend()->prepare(branch, bundle.constants(),
                                                     bundle.input().nhwc(), &prepared);
  if (!s.ok()) return;
  const int64_t batch = bundle.input().shape_nchw[0];
  std::vector<float> input(static_cast<size_t>(shape_elements(bundle.input().shape_nchw)), 0.0f);
  std::vector<float> output(static_cast<size_t>(batch * prepared->output_features()));
  if (!prepared->run(input.data(), batch, output.data(), output.size()).ok()) __builtin_trap();
  // a second batch size re-plans the arena: it must work as well as the first
  if (batch == 1 && shape_elements(bundle.input().shape_nchw) * 2 * 4 <= kMaxActivationBytes) {
    input.resize(input.size() * 2);
    output.resize(output.size() * 2);
    if (!prepared->run(input.data(), 2, output.data(), output.size()).ok()) __builtin_trap();
  }
}

}  // namespace adascale::fuzz
