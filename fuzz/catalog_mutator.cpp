#include "fuzz/catalog_mutator.h"

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

namespace adascale::fuzz {

namespace {

using nlohmann::json;

class ProgramReader {
 public:
  ProgramReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint32_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint32_t u16() { return byte() | byte() << 8; }
  size_t pick(size_t count) { return count ? u16() % count : 0; }

 private:
  const uint8_t* data_;
  size_t size_, pos_ = 0;
};

// every value of the tree, parents before children (iterative: no recursion on input depth)
std::vector<json*> values_of(json& root) {
  std::vector<json*> all{&root};
  for (size_t i = 0; i < all.size() && all.size() < 100000; ++i) {
    json& v = *all[i];
    if (v.is_object() || v.is_array())
      for (auto& child : v) all.push_back(&child);
  }
  return all;
}

json interesting_value(ProgramReader& in) {
  switch (in.byte() % 24) {
    case 0:
      return nullptr;
    case 1:
      return true;
    case 2:
      return "";
    case 3:
      return std::string(in.byte() * 64 + 1, 'x');
    case 4:
      return 0;
    case 5:
      return -1;
    case 6:
      return 1;
    case 7:
      return int64_t{1} << 31;
    case 8:
      return uint64_t{1} << 32;
    case 9:
      return (int64_t{1} << 53) + 1;
    case 10:
      return std::numeric_limits<uint64_t>::max();
    case 11:
      return std::numeric_limits<int64_t>::min();
    case 12:
      return 1e308;
    case 13:
      return -1e308;
    case 14:
      return 0.5;
    case 15:
      return -0.0;
    case 16:
      return 1e-45;
    case 17:
      return json::array();
    case 18:
      return json::object();
    case 19:
      return json::array({1, 2});
    case 20:
      return json::array({0, 0, 0, 0});
    case 21:
      return json::array({int64_t{1} << 40, int64_t{1} << 40});
    case 22:
      return 65537;
    default:
      return static_cast<int64_t>(in.u16()) - 32768;
  }
}

// names that mean something somewhere in a catalog, put where they may not belong
const char* const kNames[] = {"conv2d",
                              "batchnorm",
                              "fully_connected",
                              "relu",
                              "relu6",
                              "add",
                              "max_pool2d",
                              "avg_pool2d",
                              "global_avg_pool",
                              "concat",
                              "flatten",
                              "softmax",
                              "exit",
                              "quantize",
                              "dequantize",
                              "f32",
                              "i8",
                              "i32",
                              "f64",
                              "NCHW",
                              "input",
                              "logits",
                              "c1",
                              "stem.w",
                              "stem.b",
                              "bn.scale",
                              "block.w",
                              "fc.w",
                              "fc.b",
                              "stem.w.q",
                              "stem.w.scale",
                              "stem.b.q",
                              "kernel",
                              "stride",
                              "pad",
                              "groups",
                              "activation",
                              "relu",
                              "none",
                              "out_scale",
                              "out_zero_point",
                              "weight",
                              "bias",
                              "weight_scale",
                              "weight_mul",
                              "weight_slice",
                              "weight_slice_halves",
                              "weight_quantize",
                              "int8",
                              "bias_input_scale",
                              "pool",
                              "dilation",
                              "head",
                              "scale",
                              "shift",
                              "name",
                              "shape",
                              "offset",
                              "bytes",
                              "crc32",
                              "nodes",
                              "params",
                              "attrs",
                              "inputs",
                              "output",
                              "costs",
                              "latency_ms",
                              "median",
                              "p90",
                              "full",
                              "early",
                              "accuracy",
                              "precision",
                              "fp32",
                              "peak_memory_bytes",
                              "weight_bytes",
                              "batch",
                              "device",
                              "pareto"};

void mutate_once(json& root, ProgramReader& in) {
  std::vector<json*> all = values_of(root);
  json& v = *all[in.pick(all.size())];
  // nesting, repeating and copying may at most double the tree per edit: past this size they are
  // skipped, or eight copies of the whole catalog into itself take the harness, not the reader,
  // past the fuzzer's timeout
  const bool may_grow = all.size() < 20000;
  switch (in.byte() % 10) {
    case 0:  // another type or an extreme value
      v = interesting_value(in);
      break;
    case 1: {  // nested deeper
      if (!may_grow) break;
      const uint32_t depth = in.byte() % 48 + 1;
      const bool arrays = in.byte() & 1;
      for (uint32_t i = 0; i < depth; ++i) v = arrays ? json::array({v}) : json{{"k", v}};
      break;
    }
    case 2:  // repeated entries: counts
      if (may_grow && v.is_array() && !v.empty()) {
        const json entry = v[in.pick(v.size())];
        const uint32_t copies = in.byte() % 64 + 1;
        for (uint32_t i = 0; i < copies; ++i) v.push_back(entry);
      }
      break;
    case 3:  // dropped entries or keys
      if (v.is_array() && !v.empty())
        v.erase(v.begin() + static_cast<std::ptrdiff_t>(in.pick(v.size())));
      else if (v.is_object() && !v.empty()) {
        auto it = v.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(in.pick(v.size())));
        v.erase(it);
      }
      break;
    case 4:  // a key that is unknown, or known but out of place
      if (v.is_object()) v[kNames[in.pick(std::size(kNames))]] = interesting_value(in);
      break;
    case 5:  // a known name in place of a string
      if (v.is_string() || in.byte() % 4 == 0) v = kNames[in.pick(std::size(kNames))];
      break;
    case 6:  // numbers toward their limits
      if (v.is_number_integer()) {
        // wrapping arithmetic: the edit itself must not overflow
        const uint64_t x = static_cast<uint64_t>(v.get<int64_t>());
        const uint64_t deltas[] = {1, ~uint64_t{0}, 2, ~uint64_t{1}, 7, 64, ~uint64_t{63}, 4096};
        switch (in.byte() % 4) {
          case 0:
            v = static_cast<int64_t>(x + deltas[in.byte() % 8]);
            break;
          case 1:
            v = static_cast<int64_t>(x * 2);
            break;
          case 2:
            v = static_cast<int64_t>(0 - x);
            break;
          default:
            v = 0;
        }
      } else if (v.is_number_float()) {
        const double x = v.get<double>();
        v = (in.byte() & 1) ? x * 1e30 : -x;
      }
      break;
    case 7:  // reordered entries (use before define, shuffled tensors)
      if (v.is_array() && v.size() >= 2) std::swap(v[in.pick(v.size())], v[in.pick(v.size())]);
      break;
    case 8: {  // a subtree copied from elsewhere (a node of one branch in another, ...)
      if (!may_grow) break;
      const json copy = *all[in.pick(all.size())];
      v = copy;
      break;
    }
    default:  // a shape or list of integers rewritten
      if (v.is_array()) {
        json dims = json::array();
        const uint32_t rank = in.byte() % 10;
        for (uint32_t i = 0; i < rank; ++i) dims.push_back(static_cast<int64_t>(in.byte()) - 8);
        v = dims;
      }
  }
}

}  // namespace

std::string mutate_catalog(const std::string& catalog, const uint8_t* program, size_t size,
                           size_t max_bytes) {
  // the last catalog parsed is kept: a fuzzer mutates the same seed again and again
  static thread_local std::string parsed_text;
  static thread_local json parsed;
  if (parsed_text != catalog) {
    parsed = json::parse(catalog, nullptr, false);
    parsed_text = catalog;
  }
  if (parsed.is_discarded()) return catalog;
  json root = parsed;
  ProgramReader in(program, size);
  for (int edits = 0; edits < 8 && !in.empty(); ++edits) mutate_once(root, in);
  std::string text = root.dump(-1, ' ', false, json::error_handler_t::replace);
  return text.size() <= max_bytes ? text : catalog;
}

}  // namespace adascale::fuzz
