// ONNX export of bundle branches (docs/onnx-export.md): one branch of an opened bundle becomes a
// standard ONNX model (opset 13, NCHW) that other runtimes load, with the weights the runtime
// would derive for it (slices, folded BatchNorm scales) stored as plain initializers. Int8
// branches become QDQ models (QuantizeLinear / DequantizeLinear around float operators).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "runtime/bundle.h"

namespace adascale::exporter {

constexpr int kOnnxOpset = 13;

struct OnnxModel {
  std::string branch;  // the bundle's branch name
  std::string bytes;   // a serialized onnx.ModelProto
  size_t nodes = 0;    // ONNX nodes in its graph
  int opset = kOnnxOpset;
  bool int8 = false;  // a QDQ model
};

// One branch as an ONNX model. Input `input` float [N, C, H, W] holds what the branch's graph
// sees: images already normalized with the bundle's mean/std (the runtime normalizes before the
// graph); output `logits` [N, classes]. Throws std::runtime_error with one line naming the
// branch, the node and its op when something has no ONNX form.
OnnxModel export_onnx_branch(const Bundle& bundle, const Branch& branch);
// The same for a branch over any constants (tests build graphs the bundle writer refuses).
OnnxModel export_onnx_graph(const Branch& branch, const ConstantMap& constants,
                            const BundleInput& input, const std::vector<std::string>& classes,
                            const std::string& model_name);

// "all", "pareto" (costs with "pareto": true) or comma-separated branch names, in bundle order
// for all/pareto and as given for names. Throws on an unknown name or an empty selection.
std::vector<const Branch*> select_onnx_branches(const Bundle& bundle, const std::string& spec);

// A branch name as a file name: '>' becomes '+', anything outside [A-Za-z0-9._@+-] '_'.
std::string onnx_file_name(const std::string& branch_name);

struct OnnxFile {
  std::string branch, path;
  size_t bytes = 0, nodes = 0;
  int opset = kOnnxOpset;
  bool int8 = false;
};
// Opens the bundle, exports the selected branches to out_dir/<file name>.onnx (the folder is
// created; each file replaced atomically) and calls on_file after each. Every branch is
// converted before any file is written, so a branch that cannot be exported writes nothing.
std::vector<OnnxFile> export_onnx_files(const std::string& bundle_path, const std::string& spec,
                                        const std::string& out_dir,
                                        const std::function<void(const OnnxFile&)>& on_file);

}  // namespace adascale::exporter
