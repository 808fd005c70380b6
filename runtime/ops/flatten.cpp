// flatten: [N, H, W, C] -> [N, H*W*C] in NHWC order (the exporter permutes the following
// fully_connected weights from PyTorch's NCHW flatten order). A plain copy on every backend.
#include <cstring>

#include "runtime/op_registry.h"

namespace adascale {
namespace {

Status infer(const Node& node, const std::vector<TensorInfo>& inputs, const ConstantMap&,
             TensorInfo* output) {
  Status s = check_input_count(node, inputs, 1);
  if (!s.ok()) return s;
  if (inputs[0].shape.size() < 2 || inputs[0].dtype == DType::kI32)
    return error_status(ErrorCode::kInvalidGraph, "input must be f32/i8 of rank >= 2");
  *output = inputs[0];
  const int64_t batch = inputs[0].shape[0];
  output->shape = {batch, shape_elements(inputs[0].shape) / batch};
  return ok_status();
}

void reference(const BoundNode& b) { std::memcpy(b.out, b.in[0], b.out_info.bytes()); }

}  // namespace

ADASCALE_OP_FACTORY(flatten) { return OpDef{"flatten", infer, reference}; }

}  // namespace adascale
