// The branch space of the multi-branch network: one choice per dimension (width, operator of the
// op stages, depth, exit, precision), parsed and checked against the backbone before any
// training.
//
//   width      a multiplier applied to every channel count (importance-ordered channels, so width
//              w keeps the leading w-fraction of every layer)
//   op         an operator of supernet/operator.h applied to the 3x3 convolutions of the op
//              stages: conv (none), dpconv, fire, lowrank F
//   depth      the first K of a stage's N blocks, in the listed stages (elastic depth, as in OFA's
//              branch spaces): "d1/2@3" runs one of stage 3's two blocks, "d1/2@2/3" one of two in
//              stages 2 and 3; the skipped blocks are absent from the branch. Full depth is always
//              a choice; early exits use full depth
//   exit       the stage after which a classifier answers (the last stage: the backbone's own)
//   precision  fp32, or int8: the twin derived from an fp32 branch at export
//
// Canonical name: "w0.50", then ">dpconv@2/3" or ">lowrank0.50@2/3" when the op is not conv,
// then ">d1/2@3" when the depth is not full, then ">exit@2" when the exit is not the last stage
// (stages counted from 1), then ">int8". docs/concepts.md explains the names; docs/config.md the
// [supernet] keys.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "models/mobilenetv2.h"
#include "models/resnet.h"
#include "supernet/operator.h"
#include "trainer/config.h"

namespace adascale::trainer {

// what a branch space is checked against: the backbone's family, its stages and every channel
// count a width scales (implicitly from either family's spec)
struct BackboneLayout {
  BackboneLayout(const ResNetSpec& spec);               // NOLINT(google-explicit-constructor)
  BackboneLayout(const MobileNetV2Spec& spec);          // NOLINT(google-explicit-constructor)
  std::string arch;                                     // "resnet", "mobilenetv2"
  std::vector<int64_t> blocks;                          // per stage
  std::vector<std::pair<std::string, int64_t>> layers;  // layer name, channels
  std::optional<ResNetSpec> resnet;                     // for the checks of ResNet-only dimensions
  int64_t stages() const { return static_cast<int64_t>(blocks.size()); }
};

// a depth choice: the first `keep` of the `of` blocks of each listed stage; no stages: full depth
struct DepthChoice {
  int64_t keep = 0, of = 0;
  std::vector<int64_t> stages;  // 0-based, ascending
  bool full() const { return stages.empty(); }
  std::string name() const;  // "d1/2@2/3"; "" for full depth
  // the blocks stage `s` of a network runs, given the `blocks` it has
  int64_t blocks_of(int64_t s, int64_t blocks) const;
};

// "dK/N@S[/S...]" checked against the backbone: K in [1, N), every listed stage exists and has N
// blocks. Throws ConfigError naming `where` and the culprit.
DepthChoice parse_depth(const std::string& text, const BackboneLayout& base,
                        const std::string& where);

struct BranchChoice {
  double width = 1.0;
  Operator op;             // conv, dpconv, fire or lowrank with its fraction (no stages)
  DepthChoice depth;       // full unless elastic depth is in the space
  int64_t exit_stage = 0;  // 0-based stage whose head classifies
  std::string name;        // canonical
};

// a deployable branch: a trained (fp32) branch of the space and a precision
struct BranchRef {
  size_t branch = 0;
  bool int8 = false;
  std::string name;  // canonical, with ">int8" for int8
};

struct BranchSpace {
  std::vector<double> widths;                   // descending
  std::vector<Operator> ops;                    // conv, dpconv, fire, lowrank F (no stages)
  std::vector<int64_t> op_stages;               // 0-based
  std::vector<DepthChoice> depths;              // full depth first, then the listed choices
  std::vector<int64_t> exits;                   // 0-based, ascending, the last stage included
  std::vector<std::string> precisions;          // "fp32", "int8"
  std::string exit_head = "linear";             // linear | block
  std::vector<BranchChoice> branches;           // the trained branches (fp32)
  static constexpr size_t kMaxBranches = 4096;  // of the product, checked before any is built

  // parses and checks the [supernet] lists against the backbone; throws ConfigError naming the
  // key and the culprit (unknown operator, impossible width, exit after a missing stage, ...)
  // (a MobileNetV2 takes conv and lowrank, which factors its 1x1 convolutions, and linear exit
  // heads: its 3x3 convolutions are depthwise already)
  static BranchSpace from_config(const SupernetConfig& config, const BackboneLayout& base);
  // the same checks on typed lists (stages 0-based); `where` prefixes errors. from_config parses
  // the config's text into these, the spec of a checkpoint stores them as JSON arrays.
  static BranchSpace from_lists(std::vector<double> widths, std::vector<Operator> ops,
                                std::vector<int64_t> op_stages, std::vector<int64_t> exits,
                                std::vector<std::string> precisions, const std::string& exit_head,
                                const BackboneLayout& base,
                                const std::vector<std::string>& depths = {});
  int find(const std::string& name) const;  // -1 when absent; fp32 names only
  // every trained branch in each of `precisions` (empty: the space's own), precision-major
  std::vector<BranchRef> deployable(const std::vector<std::string>& precisions = {}) const;
  // a branch by canonical name, ">int8" for its int8 twin (derivable from any trained branch,
  // listed in `precisions` or not); false when absent
  bool resolve(const std::string& name, BranchRef* ref) const;
};

// precisions named by a comma-separated list (fp32, int8); "" gives `fallback`. Throws
// ConfigError naming `where` and the culprit.
std::vector<std::string> parse_precisions(const std::string& text,
                                          const std::vector<std::string>& fallback,
                                          const std::string& where);

// the deployable branches a list names: "all" (every trained branch in each of `precisions`) or
// canonical names, "NAME>int8" for an int8 twin. Throws ConfigError naming an unknown branch and
// listing the known ones.
std::vector<BranchRef> select_branches(const BranchSpace& space, const std::string& text,
                                       const std::vector<std::string>& precisions);

// filesystem-safe form of a branch name ("w0.50>dpconv@2/3" -> "w0.50_dpconv_2-3")
std::string branch_dir_name(const std::string& name);

}  // namespace adascale::trainer
