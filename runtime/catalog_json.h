// catalog.json <-> graph IR, for the bundle reader and writer (runtime/bundle.cpp): the limits on
// what a catalog may hold and the checked conversions of its branches. Internal to the runtime.
// Everything read is untrusted: depth, counts and lengths are bounded before anything recurses
// or allocates on them (docs/robustness.md says why these numbers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/graph.h"

namespace adascale::catalog_json {

using nlohmann::json;

constexpr size_t kMaxCatalogBytes = 64u << 20;
// the deepest legitimate value is a node attribute list or a costs entry, well under 16 levels;
// printing or walking a deeper one recurses once per level
constexpr int kMaxCatalogDepth = 32;
constexpr size_t kMaxTensors = 1u << 20;
constexpr size_t kMaxBranches = 4096;
constexpr size_t kMaxNodesPerBranch = 1u << 16;
constexpr size_t kMaxNodeInputs = 1024;
constexpr size_t kMaxClasses = 1u << 16;
constexpr size_t kMaxNameBytes = 4096;
constexpr size_t kMaxTensorRank = 8;

// A catalog that breaks a rule; the reader turns it into a kFormat status.
struct CatalogError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Status format_error(const std::string& message);
// Parses with the nesting depth bounded (*too_deep set, null returned, when it is exceeded).
json parse_bounded(const std::string& text, int max_depth, bool* too_deep);
// Checked readers of fields; each throws CatalogError naming `what`.
std::string get_name(const json& j, const std::string& what);  // a string of <= kMaxNameBytes
void check_count(size_t count, size_t limit, const std::string& what);
uint64_t get_u64(const json& j, const std::string& what);
Shape get_shape(const json& j, const std::string& what);  // integers, rank <= kMaxTensorRank
std::vector<float> get_floats(const json& j, const std::string& what);

json branch_to_json(const Branch& branch);
// Parses one branch; unknown keys and ill-typed values are errors (json exceptions and
// CatalogError are left to the caller, which reports them as format errors).
Status branch_from_json(const json& j, Branch* branch);

}  // namespace adascale::catalog_json
