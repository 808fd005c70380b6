#include "runtime/backend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "base/statistics.h"
#include "runtime/arch/cpu_kernels.h"
#include "runtime/op_registry.h"
#include "runtime/thread_pools.h"

namespace adascale {
namespace {

// int8 nodes that XNNPACK runs are labelled with its kernel family on this CPU
const char* xnnpack_int8_kernel() {
  static const std::string name = std::string("xnnpack-") + xnnpack_int8_isa();
  return name.c_str();
}

constexpr size_t kAlignment = 64;

size_t align_up(size_t value) { return (value + kAlignment - 1) / kAlignment * kAlignment; }

// XNNPACK may read up to XNN_EXTRA_BYTES past any input, so every arena slot carries that slack.
size_t slot_bytes(const TensorInfo& info) { return align_up(info.bytes() + XNN_EXTRA_BYTES); }

Status initialize_xnnpack() {
  static std::once_flag once;
  static xnn_status status = xnn_status_uninitialized;
  std::call_once(once, [] { status = xnn_initialize(nullptr); });
  return xnn_check(status, "initialize");
}

// A 64-byte aligned, zero-initialised byte buffer.
class AlignedBuffer {
 public:
  void resize(size_t bytes) {
    storage_.assign(bytes + kAlignment, 0);
    const auto address = reinterpret_cast<uintptr_t>(storage_.data());
    data_ = storage_.data() + (align_up(address) - address);
  }
  uint8_t* data() { return data_; }

 private:
  std::vector<uint8_t> storage_;
  uint8_t* data_ = nullptr;
};

// One node of the shared weights.
struct SharedStep {
  const OpDef* op = nullptr;
  // XNNPACK operators or arch kernel holding packed weights; null: the reference kernel, or
  // operators that every binding creates for itself
  std::unique_ptr<XnnOps> xnn;
  bool per_binding = false;  // an XNNPACK op without weights: nothing to share, so no lock
  // Setting up an operator writes the arena pointers into it, so one binding at a time sets it
  // up and runs it; set_up_for (guarded by mutex) names the binding it was last set up for.
  std::mutex mutex;
  uint64_t set_up_for = 0;
};

// One node of a binding.
struct Step {
  SharedStep* shared = nullptr;
  BoundNode bound;
  std::unique_ptr<XnnOps> own;  // per-binding operators; null: the shared ones or the reference
};

// Identifies one arena plan of one binding for SharedStep::set_up_for; never reused, so a new
// binding at a freed one's address still sets the operators up.
std::atomic<uint64_t> next_binding_id{1};

// Creates the XNNPACK operators (or arch kernel) of one node; null when the op has no XNNPACK
// kernel for this case and the reference kernel runs it.
Status create_xnn(const OpDef& op, const BoundNode& bound, bool arch_kernels,
                  std::unique_ptr<XnnOps>* out) {
  out->reset();
  if (!op.xnn_create) return ok_status();
  auto xnn = std::make_unique<XnnOps>();
  xnn->allow_arch = arch_kernels;
  Status created = op.xnn_create(bound, xnn.get());
  if (created.code == ErrorCode::kUnsupported) return ok_status();
  if (!created.ok())
    return error_status(created.code,
                        "node '" + bound.node->output + "' (" + op.name + "): " + created.message);
  *out = std::move(xnn);
  return ok_status();
}

}  // namespace

struct BranchWeights::Impl {
  Branch branch;
  DerivedWeights derived;  // sliced / scaled weights (graph.h)
  const ConstantMap* constants = nullptr;
  bool use_xnnpack = false, arch_kernels = false;
  std::shared_ptr<ThreadPools> threads;  // null: one thread
  // per node: runs on the calling thread whatever the binding's thread count, at the prepared
  // batch (tune_node_threads: the pool was not faster for it); empty: none
  std::vector<char> serial;
  Shape input_shape;              // as prepared; bindings start from it
  std::vector<SharedStep> steps;  // sized once: SharedStep does not move
  // fallbacks: nodes the reference kernel runs, but for the per-binding ones (counted there)
  size_t weight_bytes = 0, fallbacks = 0;
};

BranchWeights::BranchWeights(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BranchWeights::~BranchWeights() = default;
const std::string& BranchWeights::name() const { return impl_->branch.name; }
size_t BranchWeights::weight_bytes() const { return impl_->weight_bytes; }

struct PreparedBranch::Impl {
  std::shared_ptr<BranchWeights> shared;
  BranchWeights::Impl* weights = nullptr;  // of `shared`
  const Branch& branch() const { return weights->branch; }
  Shape input_shape;
  std::vector<Step> steps;
  std::unordered_map<std::string, TensorInfo> infos;
  std::unordered_map<std::string, size_t> offsets;
  AlignedBuffer arena;
  size_t arena_bytes = 0, own_fallbacks = 0;
  uint64_t binding = 0;  // this plan's id (next_binding_id)

  bool ready = false;  // plan and operators agree on the arena; false forces a re-plan

  int threads = 1;                   // per inference, use_threads
  pthreadpool_t run_pool = nullptr;  // the pool of `threads`, looked up once, not per node
  void use_threads(int t) {
    threads = t;
    run_pool = weights->threads ? weights->threads->get(t) : nullptr;
  }
  pthreadpool_t pool() const { return run_pool; }
  // operators are set up for the largest pool: its tiling also runs on fewer threads
  pthreadpool_t setup_pool() const {
    return weights->threads ? weights->threads->get(weights->threads->max_threads()) : nullptr;
  }
  pthreadpool_t node_pool(size_t i) const {
    const bool serial = i < weights->serial.size() && weights->serial[i] &&
                        input_shape[0] == weights->input_shape[0];
    return serial ? nullptr : pool();
  }

  // Greedy first-fit placement of tensors whose lifetimes [defined, last used] overlap, for the
  // tensors of `shapes`; false when the arena would not fit in size_t.
  bool plan_offsets(const std::unordered_map<std::string, TensorInfo>& shapes,
                    std::unordered_map<std::string, size_t>* placed, size_t* total) const {
    struct Life {
      std::string name;
      int64_t first, last;
      size_t bytes, offset;
    };
    std::vector<Life> lives;
    std::unordered_map<std::string, size_t> index;
    auto define = [&](const std::string& name, int64_t step) {
      index[name] = lives.size();
      lives.push_back({name, step, step, slot_bytes(shapes.at(name)), 0});
    };
    const Branch& b = branch();
    define(b.input, -1);
    for (size_t i = 0; i < b.nodes.size(); ++i) {
      for (const std::string& in : b.nodes[i].inputs)
        lives[index.at(in)].last = static_cast<int64_t>(i);
      define(b.nodes[i].output, static_cast<int64_t>(i));
    }
    lives[index.at(b.output)].last = std::numeric_limits<int64_t>::max();
    constexpr size_t kLimit = std::numeric_limits<size_t>::max() / 4;
    *total = 0;
    placed->clear();
    for (size_t i = 0; i < lives.size(); ++i) {
      if (lives[i].bytes > kLimit) return false;
      std::vector<std::pair<size_t, size_t>> busy;  // [offset, end) of overlapping live tensors
      for (size_t j = 0; j < i; ++j)
        if (lives[j].first <= lives[i].last && lives[i].first <= lives[j].last)
          busy.emplace_back(lives[j].offset, lives[j].offset + lives[j].bytes);
      std::sort(busy.begin(), busy.end());
      size_t offset = 0;
      for (const auto& range : busy) {
        if (offset + lives[i].bytes <= range.first) break;
        offset = std::max(offset, range.second);
      }
      if (offset > kLimit - lives[i].bytes) return false;
      lives[i].offset = offset;
      (*placed)[lives[i].name] = offset;
      *total = std::max(*total, offset + lives[i].bytes);
    }
    return true;
  }

  // (Re)infers shapes for the batch, re-plans the arena and re-binds every kernel to it. All or
  // nothing: on failure (a bad shape, an arena that cannot be allocated) the previous plan stays
  // as it was, and `ready` stays false until the operators are set up for a new one.
  Status plan(const Shape& shape) {
    ready = false;
    std::unordered_map<std::string, TensorInfo> new_infos;
    Status s = infer_shapes(branch(), shape, *weights->constants, &new_infos);
    if (!s.ok()) return s;
    std::unordered_map<std::string, size_t> new_offsets;
    size_t new_bytes = 0;
    if (!plan_offsets(new_infos, &new_offsets, &new_bytes))
      return error_status(ErrorCode::kOutOfMemory,
                          "activations for input " + shape_string(shape) + " do not fit in memory");
    AlignedBuffer new_arena;
    try {
      new_arena.resize(new_bytes);
    } catch (const std::bad_alloc&) {
      return error_status(ErrorCode::kOutOfMemory, "cannot allocate " + std::to_string(new_bytes) +
                                                       " bytes of activations for input " +
                                                       shape_string(shape));
    }
    infos.swap(new_infos);
    offsets.swap(new_offsets);
    arena = std::move(new_arena);
    arena_bytes = new_bytes;
    input_shape = shape;
    binding = next_binding_id.fetch_add(1, std::memory_order_relaxed);
    for (size_t i = 0; i < steps.size(); ++i) {
      const Node& node = branch().nodes[i];
      BoundNode& bound = steps[i].bound;
      bound.in_info.clear();
      bound.in.clear();
      for (const std::string& in : node.inputs) {
        bound.in_info.push_back(infos.at(in));
        bound.in.push_back(arena.data() + offsets.at(in));
      }
      bound.out_info = infos.at(node.output);
      bound.out = arena.data() + offsets.at(node.output);
    }
    return ok_status();
  }

  // re-plans when the batch changed or an earlier re-plan did not complete
  Status plan_for_batch(int64_t batch) {
    if (ready && batch == input_shape[0]) return ok_status();
    Shape shape = input_shape;
    shape[0] = batch;
    Status s = plan(shape);
    if (s.ok()) s = setup_own_xnnpack();
    if (!s.ok()) return s;
    ready = true;
    return ok_status();
  }

  void load_input(const float* input) {
    const std::string& name = branch().input;
    std::memcpy(arena.data() + offsets.at(name), input, infos.at(name).bytes());
  }

  Status execute(size_t i) { return execute(steps[i], node_pool(i)); }
  Status execute(Step& step, pthreadpool_t run_pool) {
    if (step.own) return step.own->run(step.bound, run_pool);
    SharedStep& shared = *step.shared;
    if (!shared.xnn) {
      shared.op->reference(step.bound);
      return ok_status();
    }
    std::lock_guard<std::mutex> lock(shared.mutex);
    if (shared.set_up_for != binding) {
      shared.set_up_for = 0;  // a failed setup leaves the operator set up for nobody
      Status s = shared.op->xnn_setup(step.bound, shared.xnn.get(), setup_pool());
      if (!s.ok()) return s;
      shared.set_up_for = binding;
    }
    return shared.xnn->run(step.bound, run_pool);
  }

  // The operators this binding owns follow its arena now; shared ones are set up when run.
  Status setup_own_xnnpack() {
    for (Step& step : steps) {
      if (!step.own) continue;
      Status s = step.shared->op->xnn_setup(step.bound, step.own.get(), setup_pool());
      if (!s.ok()) return s;
    }
    return ok_status();
  }

  const XnnOps* xnn_of(const Step& step) const {
    return step.own ? step.own.get() : step.shared->xnn.get();
  }
};

PreparedBranch::PreparedBranch(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PreparedBranch::~PreparedBranch() = default;
const std::string& PreparedBranch::name() const { return impl_->branch().name; }
const Shape& PreparedBranch::input_shape() const { return impl_->input_shape; }
size_t PreparedBranch::arena_bytes() const { return impl_->arena_bytes; }
size_t PreparedBranch::weight_bytes() const { return impl_->weights->weight_bytes; }
size_t PreparedBranch::reference_fallbacks() const {
  return impl_->weights->fallbacks + impl_->own_fallbacks;
}
size_t PreparedBranch::node_count() const { return impl_->steps.size(); }
int64_t PreparedBranch::output_features() const {
  const Shape& shape = impl_->infos.at(impl_->branch().output).shape;
  return shape_elements(shape) / shape[0];
}

int PreparedBranch::threads() const { return impl_->threads; }
int PreparedBranch::max_threads() const {
  return impl_->weights->threads ? impl_->weights->threads->max_threads() : 1;
}
Status PreparedBranch::set_threads(int threads) {
  if (threads < 1 || threads > max_threads())
    return error_status(ErrorCode::kInvalidArgument, "threads " + std::to_string(threads) +
                                                         " outside [1, " +
                                                         std::to_string(max_threads()) + "]");
  impl_->use_threads(threads);
  return ok_status();
}

Status PreparedBranch::run(const float* input, int64_t batch, float* output,
                           size_t output_capacity) {
  Impl& impl = *impl_;
  if (!input || !output) return error_status(ErrorCode::kInvalidArgument, "null input or output");
  if (batch < 1) return error_status(ErrorCode::kInvalidArgument, "batch must be >= 1");
  Status planned = impl.plan_for_batch(batch);
  if (!planned.ok()) return planned;
  const TensorInfo& out_info = impl.infos.at(impl.branch().output);
  const size_t out_count = static_cast<size_t>(shape_elements(out_info.shape));
  if (output_capacity < out_count)
    return error_status(ErrorCode::kInvalidArgument, "output capacity " +
                                                         std::to_string(output_capacity) + " < " +
                                                         std::to_string(out_count) + " logits");
  impl.load_input(input);
  for (size_t i = 0; i < impl.steps.size(); ++i) {
    Status s = impl.execute(i);
    if (!s.ok()) return s;
  }
  std::memcpy(output, impl.arena.data() + impl.offsets.at(impl.branch().output),
              out_count * sizeof(float));
  return ok_status();
}

namespace {

std::string layer_type(const Node& node, const BoundNode& bound) {
  if (node.op == "fully_connected") return "fully connected";
  if (node.op != "conv2d") return node.op;
  const auto kernel = node.attrs.get_ints("kernel", {1, 1});
  const std::string size = std::to_string(kernel.at(0)) + "x" + std::to_string(kernel.at(1));
  const int64_t groups = node.attrs.get_int("groups", 1);
  const int64_t channels = bound.in_info.empty() ? 0 : bound.in_info[0].shape.back();
  if (groups > 1 && groups == channels) return "depthwise " + size;
  return (groups > 1 ? "grouped conv " : "conv ") + size;
}

}  // namespace

Status PreparedBranch::profile(const float* input, int runs, std::vector<NodeTiming>* timings) {
  Impl& impl = *impl_;
  if (!input || !timings) return error_status(ErrorCode::kInvalidArgument, "null input or timings");
  if (runs < 1) return error_status(ErrorCode::kInvalidArgument, "profile needs runs >= 1");
  Status planned = impl.plan_for_batch(impl.input_shape[0]);
  if (!planned.ok()) return planned;
  const size_t steps = impl.steps.size();
  std::vector<std::vector<double>> us(steps, std::vector<double>(static_cast<size_t>(runs)));
  impl.load_input(input);
  for (int r = -1; r < runs; ++r) {  // run -1 warms caches and is not kept
    for (size_t i = 0; i < steps; ++i) {
      const auto start = std::chrono::steady_clock::now();
      Status s = impl.execute(i);
      if (!s.ok()) return s;
      if (r >= 0)
        us[i][static_cast<size_t>(r)] =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                .count();
    }
  }
  timings->clear();
  for (size_t i = 0; i < steps; ++i) {
    const Step& step = impl.steps[i];
    const Node& node = impl.branch().nodes[i];
    const XnnOps* xnn = impl.xnn_of(step);
    NodeTiming t;
    t.op = node.op;
    t.output = node.output;
    t.layer = layer_type(node, step.bound);
    t.dtype = step.bound.out_info.dtype;
    t.kernel = !xnn        ? "reference"
               : xnn->arch ? xnn->arch->name()
               : t.dtype == DType::kI8 ||
                       (!step.bound.in_info.empty() && step.bound.in_info[0].dtype == DType::kI8)
                   ? xnnpack_int8_kernel()
                   : "xnnpack";
    t.median_us = base::percentile(std::move(us[i]), 0.5);
    timings->push_back(std::move(t));
  }
  return ok_status();
}

namespace {

// Per-node thread-pool synchronisation costs a few microseconds, more than small nodes (adds,
// 1x1 convolutions of small maps) take at batch 1. So each node runs on the calling thread and
// on the largest pool in turn, `rounds` times after a warm-up, at the prepared batch; a node
// keeps the pool only where its lower quartile is at least 10% below (load only ever adds time,
// and a plan that changes between preparations is not the one the catalog measured).
Status time_node_threads(PreparedBranch::Impl& impl, int rounds, std::vector<char>* serial) {
  const size_t steps = impl.steps.size();
  std::vector<std::vector<double>> alone(steps), pooled(steps);
  const pthreadpool_t pool = impl.setup_pool();
  auto timed = [&](size_t i, pthreadpool_t p, std::vector<double>* us) {
    const auto start = std::chrono::steady_clock::now();
    Status s = impl.execute(impl.steps[i], p);
    us->push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
    return s;
  };
  for (int r = -1; r < rounds; ++r)  // round -1 warms caches and the pool, and is not kept
    for (size_t i = 0; i < steps; ++i) {
      // alternate which goes first, so that neither always runs on caches the other warmed
      const bool pool_first = r % 2 != 0;
      Status s = timed(i, pool_first ? pool : nullptr, pool_first ? &pooled[i] : &alone[i]);
      if (s.ok()) s = timed(i, pool_first ? nullptr : pool, pool_first ? &alone[i] : &pooled[i]);
      if (!s.ok()) return s;
    }
  serial->assign(steps, 0);
  for (size_t i = 0; i < steps; ++i) {  // the first of each is the warm-up's
    const std::vector<double> a(alone[i].begin() + 1, alone[i].end()),
        p(pooled[i].begin() + 1, pooled[i].end());
    (*serial)[i] = base::percentile(p, 0.25) < 0.9 * base::percentile(a, 0.25) ? 0 : 1;
  }
  return ok_status();
}

class GenericBackend : public Backend {
 public:
  GenericBackend(bool use_xnnpack, int threads, bool arch_kernels, bool tune_node_threads)
      : use_xnnpack_(use_xnnpack), arch_kernels_(arch_kernels), tune_(tune_node_threads) {
    if (use_xnnpack && threads > 1) threads_ = std::make_shared<ThreadPools>(threads);
  }
  const char* name() const override {
    return use_xnnpack_ ? (arch_kernels_ ? "xnnpack" : "xnnpack-plain") : "reference";
  }

  Status prepare_weights(const Branch& branch, const ConstantMap& constants,
                         const Shape& input_shape,
                         std::shared_ptr<BranchWeights>* out) const override {
    if (use_xnnpack_) {
      Status s = initialize_xnnpack();
      if (!s.ok()) return s;
    }
    auto impl = std::make_unique<BranchWeights::Impl>();
    Status s = derive_weights(branch, constants, /*materialize=*/true, &impl->derived);
    if (!s.ok()) return s;
    impl->branch = impl->derived.branch;
    impl->constants = &impl->derived.constants;
    impl->use_xnnpack = use_xnnpack_;
    impl->arch_kernels = arch_kernels_;
    impl->threads = threads_;
    impl->input_shape = input_shape;
    impl->weight_bytes = used_weight_bytes(impl->derived);
    // the operators are created from tensor infos alone: no arena yet
    std::unordered_map<std::string, TensorInfo> infos;
    s = infer_shapes(impl->branch, input_shape, *impl->constants, &infos);
    if (!s.ok()) return s;
    impl->steps = std::vector<SharedStep>(impl->branch.nodes.size());
    for (size_t i = 0; i < impl->steps.size(); ++i) {
      SharedStep& step = impl->steps[i];
      const Node& node = impl->branch.nodes[i];
      step.op = OpRegistry::instance().find(node.op);
      if (!use_xnnpack_) continue;
      if (!step.op->xnn_create) {
        ++impl->fallbacks;
      } else if (step.op->params.empty()) {
        step.per_binding = true;
      } else {
        BoundNode bound;
        bound.node = &node;
        bound.constants = impl->constants;
        for (const std::string& in : node.inputs) {
          bound.in_info.push_back(infos.at(in));
          bound.in.push_back(nullptr);
        }
        bound.out_info = infos.at(node.output);
        s = create_xnn(*step.op, bound, arch_kernels_, &step.xnn);
        if (!s.ok()) return s;
        if (!step.xnn) ++impl->fallbacks;
      }
    }
    auto weights = std::make_shared<BranchWeights>(std::move(impl));
    if (tune_ && threads_ && threads_->max_threads() > 1) {
      // before anything else can see the weights: `serial` is read without a lock
      std::unique_ptr<PreparedBranch> probe;
      s = bind_branch(weights, &probe);
      std::vector<char> serial;
      if (s.ok()) s = time_node_threads(probe->impl(), kTuneRounds, &serial);
      if (!s.ok()) return s;
      weights->impl().serial = std::move(serial);
    }
    *out = std::move(weights);
    return ok_status();
  }

  Status run_node(const Node& node, const std::vector<TensorInfo>& input_infos,
                  const std::vector<const void*>& inputs, const ConstantMap& constants,
                  TensorInfo* output_info, std::vector<uint8_t>* output) const override {
    const OpDef* op = OpRegistry::instance().find(node.op);
    if (!op) return error_status(ErrorCode::kNotFound, "unknown op '" + node.op + "'");
    if (inputs.size() != input_infos.size())
      return error_status(ErrorCode::kInvalidArgument, "inputs and infos differ in count");
    Status s = op->infer(node, input_infos, constants, output_info);
    if (!s.ok()) return s;
    // Copies inputs into padded buffers so XNNPACK's over-reads stay in bounds.
    std::vector<AlignedBuffer> buffers(inputs.size() + 1);
    BoundNode bound{&node, input_infos, *output_info, {}, nullptr, &constants};
    for (size_t i = 0; i < inputs.size(); ++i) {
      buffers[i].resize(slot_bytes(input_infos[i]));
      std::memcpy(buffers[i].data(), inputs[i], input_infos[i].bytes());
      bound.in.push_back(buffers[i].data());
    }
    buffers.back().resize(slot_bytes(*output_info));
    bound.out = buffers.back().data();
    bool ran = false;
    if (use_xnnpack_ && op->xnn_create) {
      s = initialize_xnnpack();
      if (!s.ok()) return s;
      XnnOps ops;
      ops.allow_arch = arch_kernels_;
      s = op->xnn_create(bound, &ops);
      if (s.ok()) {
        pthreadpool_t pool = threads_ ? threads_->get(threads_->max_threads()) : nullptr;
        s = op->xnn_setup(bound, &ops, pool);
        if (s.ok()) s = ops.run(bound, pool);
        if (!s.ok()) return s;
        ran = true;
      } else if (s.code != ErrorCode::kUnsupported) {
        return s;
      }
    }
    if (!ran) op->reference(bound);
    const uint8_t* produced = static_cast<const uint8_t*>(bound.out);
    output->assign(produced, produced + output_info->bytes());
    return ok_status();
  }

 private:
  static constexpr int kTuneRounds = 21;
  bool use_xnnpack_;
  bool arch_kernels_;
  bool tune_;
  std::shared_ptr<ThreadPools> threads_;
};

}  // namespace

Status Backend::prepare(const Branch& branch, const ConstantMap& constants,
                        const Shape& input_shape, std::unique_ptr<PreparedBranch>* out) const {
  std::shared_ptr<BranchWeights> weights;
  Status s = prepare_weights(branch, constants, input_shape, &weights);
  if (!s.ok()) return s;
  return bind_branch(std::move(weights), out);
}

Status bind_branch(std::shared_ptr<BranchWeights> weights, std::unique_ptr<PreparedBranch>* out) {
  if (!weights) return error_status(ErrorCode::kInvalidArgument, "null branch weights");
  auto impl = std::make_unique<PreparedBranch::Impl>();
  impl->weights = &weights->impl();
  impl->shared = std::move(weights);
  BranchWeights::Impl& w = *impl->weights;
  impl->use_threads(w.threads ? w.threads->max_threads() : 1);
  impl->steps.resize(w.steps.size());
  for (size_t i = 0; i < w.steps.size(); ++i) {
    impl->steps[i].shared = &w.steps[i];
    impl->steps[i].bound.node = &w.branch.nodes[i];
    impl->steps[i].bound.constants = w.constants;
  }
  Status s = impl->plan(w.input_shape);
  if (!s.ok()) return s;
  for (Step& step : impl->steps) {
    if (!step.shared->per_binding) continue;
    s = create_xnn(*step.shared->op, step.bound, w.arch_kernels, &step.own);
    if (!s.ok()) return s;
    if (!step.own) ++impl->own_fallbacks;
  }
  s = impl->setup_own_xnnpack();
  if (!s.ok()) return s;
  impl->ready = true;
  *out = std::make_unique<PreparedBranch>(std::move(impl));
  return ok_status();
}

std::unique_ptr<Backend> make_reference_backend() {
  return std::make_unique<GenericBackend>(false, 1, false, false);
}
std::unique_ptr<Backend> make_xnnpack_backend(int threads, bool arch_kernels,
                                              bool tune_node_threads) {
  return std::make_unique<GenericBackend>(true, threads, arch_kernels, tune_node_threads);
}

const char* int8_conv_kernel() {
  return vnni_int8_conv_supported() ? "avx512vnni" : xnnpack_int8_kernel();
}

}  // namespace adascale
