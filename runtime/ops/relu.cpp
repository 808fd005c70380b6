// relu: y = max(x, 0), f32 or int8 (same quantization in and out).
#include "runtime/ops/clamp_common.h"

namespace adascale {
namespace {

void reference(const BoundNode& b) { clamp_op::reference(b, Activation::kRelu); }
Status xnn_create(const BoundNode& b, XnnOps* ops) {
  return clamp_op::xnn_create(b, ops, Activation::kRelu);
}

}  // namespace

ADASCALE_OP_FACTORY(relu) {
  return OpDef{"relu", clamp_op::infer, reference, xnn_create, clamp_op::xnn_setup};
}

}  // namespace adascale
