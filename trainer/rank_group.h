// RankGroup: the ranks of one data-parallel training run, on PyTorch's c10d: a TCPStore for the
// rendezvous and small exchanges, a Gloo process group for the collectives. Ranks find each
// other as torchrun's do (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK); rank 0 hosts
// the store.
//
// Everything that goes wrong between ranks ends in a DistributedError with one line that names
// the rank concerned: a rendezvous that never completes (which ranks are missing), ranks that
// disagree on the config or the data (the first differing line), a rank that died during
// training (found by its heartbeat in the store: a rank that stops beating is named; when the
// store itself is gone, rank 0 is). After such an error the group is broken: its collectives
// are not waited for again and its destructor does not block.
//
// current_group() is the group the calling thread trains in (set by RankScope); nullptr is a
// run of one process, which every caller treats as a group of one.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace adascale::trainer {

class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RendezvousOptions {
  std::string master_addr = "127.0.0.1";
  int port = 29500;
  int rank = 0;
  int world = 1;
  int local_rank = 0;
  // for the whole rendezvous (every rank joined) and for each collective
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  // a rank whose heartbeat has not moved for this long is taken for dead
  std::chrono::milliseconds heartbeat_grace{std::chrono::seconds(3)};
  // gloo (CPU tensors; CUDA tensors are staged through it too) or nccl (a CUDA build, one GPU
  // per rank: cuda:local_rank)
  std::string backend = "gloo";
};

// torchrun's variables from the environment, where set: MASTER_ADDR, MASTER_PORT, RANK,
// WORLD_SIZE, LOCAL_RANK; a malformed value is a DistributedError naming it. found: whether
// WORLD_SIZE was set.
RendezvousOptions rendezvous_from_environment(RendezvousOptions defaults, bool* found);

class RankGroup {
 public:
  // blocks until all `world` ranks joined (or options.timeout passed)
  static std::unique_ptr<RankGroup> join(const RendezvousOptions& options);
  ~RankGroup();
  RankGroup(const RankGroup&) = delete;
  RankGroup& operator=(const RankGroup&) = delete;

  int rank() const;
  int world() const;
  int local_rank() const;
  bool leader() const { return rank() == 0; }

  // Every rank passes its text; all ranks get the same verdict: if any rank's text differs from
  // rank 0's, every rank throws DistributedError "ranks disagree on <what>: rank R differs from
  // rank 0 at <first differing line>".
  void require_same(const std::string& what, const std::string& text);
  // rank 0's `text` on every rank (others' argument is ignored)
  std::string share(const std::string& key, const std::string& text);

  // in place, rank 0's values on every rank (same shapes on every rank)
  void broadcast(std::vector<torch::Tensor> tensors);
  void broadcast_state(std::map<std::string, torch::Tensor>& state);
  void allreduce_sum(torch::Tensor t);
  // starts a sum; the returned function waits for it
  std::function<void()> allreduce_sum_async(torch::Tensor t);
  void barrier();
  // checks that `value` is the same on every rank; otherwise DistributedError "<what> differs
  // between ranks" (every rank throws)
  void require_same_value(const std::string& what, int64_t value);

  // what the run is doing, for the error that names a dead rank ("joint epoch 2, step 17")
  void set_activity(std::string activity);

 private:
  struct Impl;
  explicit RankGroup(std::unique_ptr<Impl> impl);
  // a collective's failure, explained: which rank stopped, during what
  [[noreturn]] void fail(const std::string& what);
  std::unique_ptr<Impl> impl_;
};

// the group of the calling thread; nullptr: a single process
RankGroup* current_group();
class RankScope {
 public:
  explicit RankScope(RankGroup* group);
  ~RankScope();
  RankScope(const RankScope&) = delete;
  RankScope& operator=(const RankScope&) = delete;

 private:
  RankGroup* previous_;
};

// rank, rank on this machine and world of the calling thread's group (0, 0, 1 without one)
int current_rank();
int current_local_rank();
int current_world();

// the first line where two texts differ, "[section] 'a' vs 'b'"; "" when they are equal
std::string first_difference(const std::string& a, const std::string& b);

}  // namespace adascale::trainer
