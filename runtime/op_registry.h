// Op registry: every op is defined in its own file under ops/ and listed once in ops/op_list.h.
// An op provides shape inference, a portable reference kernel and optionally an XNNPACK kernel
// (operators created once per prepared branch, set up whenever the batch size changes).
#pragma once

#include <pthreadpool.h>
#include <xnnpack.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "runtime/graph.h"

namespace adascale {

// A node bound to concrete tensors: infos always, data pointers once the arena is planned.
struct BoundNode {
  const Node* node = nullptr;
  std::vector<TensorInfo> in_info;
  TensorInfo out_info;
  std::vector<const void*> in;
  void* out = nullptr;
  const ConstantMap* constants = nullptr;

  // The constant bound to a param slot, or nullptr when the node has no such slot.
  const ConstTensor* param(const std::string& slot) const;
  template <typename T>
  const T* param_data(const std::string& slot) const {
    const ConstTensor* tensor = param(slot);
    return tensor ? static_cast<const T*>(tensor->data) : nullptr;
  }
};

// A per-architecture kernel (runtime/arch/) that an op's xnn_create installs in place of XNNPACK
// operators where it beats them on this CPU, the way ncnn overrides its portable ops per ISA.
class ArchKernel {
 public:
  virtual ~ArchKernel() = default;
  virtual const char* name() const = 0;  // e.g. "avx512vnni"
  // Called after every arena (re)plan, like xnn_setup.
  virtual void setup(const BoundNode& bound) = 0;
  virtual void run(const BoundNode& bound, pthreadpool_t threadpool) = 0;
};

// What runs one node of a prepared branch on the XNNPACK backend: XNNPACK operators, or an
// architecture kernel when the backend allows them and the op installed one.
class XnnOps {
 public:
  XnnOps() = default;
  XnnOps(const XnnOps&) = delete;
  XnnOps& operator=(const XnnOps&) = delete;
  ~XnnOps();
  std::vector<xnn_operator_t> ops;
  bool allow_arch = true;  // set by the backend before xnn_create
  std::unique_ptr<ArchKernel> arch;

  // Runs the node: its architecture kernel if it has one, else its XNNPACK operators in order.
  Status run(const BoundNode& bound, pthreadpool_t threadpool);
};

// What a node of an op may carry. Bundles are untrusted input: an attribute of the wrong type
// would otherwise read as its default ("stride": "2" running as stride 1), so infer_shapes checks
// every node against its op's lists and refuses unknown names and wrong kinds.
enum class AttrKind { kInt, kInts, kFloat, kString };
struct AttrSpec {
  const char* name;
  AttrKind kind;
};
// attribute groups shared by several ops
extern const std::vector<AttrSpec> kActivationAttrs;         // activation
extern const std::vector<AttrSpec> kOutputQuantAttrs;        // out_scale, out_zero_point
extern const std::vector<AttrSpec> kDerivedWeightAttrs;      // weight_slice..., bias_input_scale
std::vector<AttrSpec> window_attrs(const char* kernel_key);  // kernel_key, stride, pad
std::vector<AttrSpec> join_attrs(std::initializer_list<std::vector<AttrSpec>> groups);

struct OpDef {
  std::string name;
  Status (*infer)(const Node& node, const std::vector<TensorInfo>& inputs,
                  const ConstantMap& constants, TensorInfo* output) = nullptr;
  void (*reference)(const BoundNode& bound) = nullptr;
  // Optional. Returning kUnsupported makes the XNNPACK backend run the reference kernel instead.
  Status (*xnn_create)(const BoundNode& bound, XnnOps* ops) = nullptr;
  Status (*xnn_setup)(const BoundNode& bound, XnnOps* ops, pthreadpool_t threadpool) = nullptr;
  std::vector<AttrSpec> attrs;      // every attribute the op reads
  std::vector<std::string> params;  // every param slot it reads
};

// The node's attributes and param slots against its op's lists: one error naming the first
// unknown name or wrong kind.
Status check_node_schema(const OpDef& op, const Node& node);

class OpRegistry {
 public:
  static const OpRegistry& instance();
  const OpDef* find(const std::string& name) const;
  const std::vector<OpDef>& ops() const { return ops_; }

 private:
  OpRegistry();
  std::vector<OpDef> ops_;
};

// Helpers shared by op files.
Status check_input_count(const Node& node, const std::vector<TensorInfo>& inputs, size_t count);
// Looks up a param slot and checks dtype and (when non-empty) shape.
Status require_param(const Node& node, const ConstantMap& constants, const std::string& slot,
                     DType dtype, const Shape& shape, const ConstTensor** tensor);
Status xnn_check(xnn_status status, const char* what);
// Output quantization of an int8-producing node: attrs out_scale / out_zero_point.
Status read_output_quant(const Node& node, TensorInfo* output);
// Attribute helpers for 2-D windows: [h, w] pairs and [top, left, bottom, right] padding.
struct Window2d {
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, pt = 0, pl = 0, pb = 0, pr = 0;
};
Status read_window(const Node& node, const char* kernel_key, Window2d* window);
int64_t window_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad_before,
                           int64_t pad_after);

#define ADASCALE_OP_FACTORY(op_name) OpDef make_op_##op_name()

}  // namespace adascale
