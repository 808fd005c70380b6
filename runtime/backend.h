// Backends turn a Branch plus its constants into a PreparedBranch in two parts: BranchWeights
// (derived weights, XNNPACK operators with their packed weights), made once and shared, and the
// binding of those weights to one activation arena sized by a liveness plan.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/graph.h"

namespace adascale {

// One node's time in PreparedBranch::profile.
struct NodeTiming {
  std::string op;      // registered op name
  std::string output;  // the tensor the node defines
  // layer type for summaries: "conv 3x3", "conv 1x1", "depthwise 3x3", "grouped conv 3x3",
  // "fully connected", else the op name
  std::string layer;
  DType dtype = DType::kF32;  // of the output
  // what ran it: "xnnpack" (fp32), "xnnpack-<isa>" (int8: runtime/arch/cpu_kernels.h),
  // "reference" (no XNNPACK kernel for the case) or the architecture kernel's name
  std::string kernel;
  double median_us = 0;
};

// The shareable part of a prepared branch: derived weights and the operators holding packed
// weights. Immutable once made, except that an operator with weights is set up for the binding
// that runs it, under the operator's own lock: any number of PreparedBranch bindings on any
// threads may use one BranchWeights at once. It refers to the constants it was prepared from.
class BranchWeights {
 public:
  struct Impl;
  explicit BranchWeights(std::unique_ptr<Impl> impl);
  ~BranchWeights();
  BranchWeights(const BranchWeights&) = delete;
  BranchWeights& operator=(const BranchWeights&) = delete;

  const std::string& name() const;
  size_t weight_bytes() const;           // bytes of the constants the branch references
  Impl& impl() const { return *impl_; }  // for backend.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

// One binding of BranchWeights to its own arena; use it from one thread at a time.
class PreparedBranch {
 public:
  struct Impl;
  explicit PreparedBranch(std::unique_ptr<Impl> impl);
  ~PreparedBranch();
  PreparedBranch(const PreparedBranch&) = delete;
  PreparedBranch& operator=(const PreparedBranch&) = delete;

  // Runs `batch` NHWC float32 images; writes batch * output_features() floats to `output`.
  // A batch size different from the previous call re-plans the arena (operators are kept).
  Status run(const float* input, int64_t batch, float* output, size_t output_capacity);
  // Runs the branch `runs` times on `input` (the current batch size's worth of NHWC floats),
  // timing every node; one timing per node in graph order, the median over the runs.
  Status profile(const float* input, int runs, std::vector<NodeTiming>* timings);

  const std::string& name() const;
  const Shape& input_shape() const;  // NHWC at the current batch size
  int64_t output_features() const;   // logits per image
  size_t arena_bytes() const;        // peak activation bytes of the liveness plan
  size_t weight_bytes() const;       // bytes of the constants the branch references
  size_t memory_bytes() const { return arena_bytes() + weight_bytes(); }
  // Nodes running the reference kernel on an XNNPACK backend (no XNNPACK kernel for that case).
  size_t reference_fallbacks() const;
  size_t node_count() const;  // nodes in graph order, one timing each in profile()

  // Threads of the next inferences, 1 to max_threads() (the backend's; the default). Each count
  // has its own pool; nodes that no pool made faster at the prepared batch run on the calling
  // thread (make_xnnpack_backend's tune_node_threads).
  Status set_threads(int threads);
  int threads() const;
  int max_threads() const;

  Impl& impl() { return *impl_; }  // for backend.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // `constants` must outlive the weights. input_shape is NHWC with the batch in dim 0. Derives
  // the weights and creates the operators (packing their weights); nothing is bound to an arena.
  virtual Status prepare_weights(const Branch& branch, const ConstantMap& constants,
                                 const Shape& input_shape,
                                 std::shared_ptr<BranchWeights>* out) const = 0;
  // prepare_weights and bind_branch in one: a branch with weights of its own.
  Status prepare(const Branch& branch, const ConstantMap& constants, const Shape& input_shape,
                 std::unique_ptr<PreparedBranch>* out) const;
  // Runs one node on raw tensors (the per-op test harness uses this).
  virtual Status run_node(const Node& node, const std::vector<TensorInfo>& input_infos,
                          const std::vector<const void*>& inputs, const ConstantMap& constants,
                          TensorInfo* output_info, std::vector<uint8_t>* output) const = 0;
};

// Binds shared weights to a new arena at the weights' input shape: plans it and creates the
// operators that hold no weights (pooling, add, ...); no weight is derived or packed again.
Status bind_branch(std::shared_ptr<BranchWeights> weights, std::unique_ptr<PreparedBranch>* out);

std::unique_ptr<Backend> make_reference_backend();
// threads <= 1 runs on the calling thread; more makes a pthreadpool per count from 2 to
// `threads`, shared by its branches (and by every binding of their weights: parallel sections of
// concurrent bindings take turns on a pool). arch_kernels: let ops use runtime/arch/ kernels
// where this CPU has them (int8 convolution on AVX512-VNNI); false runs XNNPACK alone (for
// comparisons). tune_node_threads (with threads > 1): preparing a branch times each of its nodes
// on the calling thread and on the largest pool, and keeps the pool only for the nodes it makes
// faster (a few milliseconds per branch); false runs every node on the pool.
std::unique_ptr<Backend> make_xnnpack_backend(int threads = 1, bool arch_kernels = true,
                                              bool tune_node_threads = true);
// the kernel an XNNPACK backend with arch_kernels runs int8 convolutions with on this CPU:
// "avx512vnni" (runtime/arch/) or XNNPACK's family, e.g. "xnnpack-neondot", "xnnpack-neon",
// "xnnpack-avx512skx"; recorded with every measured latency
const char* int8_conv_kernel();

}  // namespace adascale
