// relu6: y = min(max(x, 0), 6), f32 or int8 (same quantization in and out).
#include "runtime/ops/clamp_common.h"

namespace adascale {
namespace {

void reference(const BoundNode& b) { clamp_op::reference(b, Activation::kRelu6); }
Status xnn_create(const BoundNode& b, XnnOps* ops) {
  return clamp_op::xnn_create(b, ops, Activation::kRelu6);
}

}  // namespace

ADASCALE_OP_FACTORY(relu6) {
  return OpDef{"relu6", clamp_op::infer, reference, xnn_create, clamp_op::xnn_setup};
}

}  // namespace adascale
