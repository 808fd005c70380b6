// exit: early-exit marker. Names its input as the logits of an exit head (attr "head", free
// text) and passes it through unchanged; a branch that exits early ends at such a node.
#include <cstring>

#include "runtime/op_registry.h"

namespace adascale {
namespace {

Status infer(const Node& node, const std::vector<TensorInfo>& inputs, const ConstantMap&,
             TensorInfo* output) {
  Status s = check_input_count(node, inputs, 1);
  if (!s.ok()) return s;
  *output = inputs[0];
  return ok_status();
}

void reference(const BoundNode& b) { std::memcpy(b.out, b.in[0], b.out_info.bytes()); }

}  // namespace

ADASCALE_OP_FACTORY(exit) {
  OpDef op{"exit", infer, reference, nullptr, nullptr};
  op.attrs = {{"head", AttrKind::kString}};
  op.params = {};
  return op;
}

}  // namespace adascale
