#include "trainer/rank_group.h"

// Debian's LibTorch is built with Gloo; its c10d header hides the class without this. A CUDA
// build of LibTorch also has NCCL.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#if defined(ADASCALE_WITH_CUDA) && !defined(USE_C10D_NCCL)
#define USE_C10D_NCCL 1
#endif

#include <arpa/inet.h>
#include <glog/logging.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#ifdef ADASCALE_WITH_CUDA
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "base/unique_fd.h"

namespace adascale::trainer {

namespace {

using Clock = std::chrono::steady_clock;

thread_local RankGroup* t_group = nullptr;

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }
std::string text_of(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

int env_int(const char* name, int fallback, int min, int max) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  if (errno || *end || x < min || x > max)
    throw DistributedError(std::string("environment variable ") + name + "='" + v +
                           "' is not an integer in [" + std::to_string(min) + ", " +
                           std::to_string(max) + "]");
  return static_cast<int>(x);
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// the address of this host on the route to the master: what the other ranks can reach
std::string local_address_towards(const std::string& master, int port) {
  if (is_loopback(master)) return "127.0.0.1";
  addrinfo hints{}, *found = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  if (getaddrinfo(master.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found)
    throw DistributedError("rendezvous host '" + master + "' cannot be resolved");
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(found, freeaddrinfo);
  base::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM, 0));
  sockaddr_in local{};
  socklen_t len = sizeof local;
  // a datagram socket's connect sends nothing: it only picks the route and the source address
  if (fd.get() < 0 || ::connect(fd.get(), found->ai_addr, found->ai_addrlen) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &len) != 0)
    throw DistributedError("no route to the rendezvous host '" + master + "'");
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &local.sin_addr, text, sizeof text);
  return text;
}

std::string seconds_text(std::chrono::milliseconds d) {
  std::ostringstream o;
  o << d.count() / 1000.0 << " s";
  return o.str();
}

}  // namespace

std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb, section;
  while (true) {
    const bool ga = static_cast<bool>(std::getline(sa, la));
    const bool gb = static_cast<bool>(std::getline(sb, lb));
    if (!ga && !gb) return "";
    if (!ga) la.clear();
    if (!gb) lb.clear();
    if (ga && !la.empty() && la[0] == '[') section = la;
    if (la != lb) return (section.empty() ? "" : section + " ") + "'" + la + "' vs '" + lb + "'";
  }
}

RendezvousOptions rendezvous_from_environment(RendezvousOptions o, bool* found) {
  *found = std::getenv("WORLD_SIZE") != nullptr;
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) o.master_addr = a;
  o.port = env_int("MASTER_PORT", o.port, 1, 65535);
  o.world = env_int("WORLD_SIZE", o.world, 1, 4096);
  o.rank = env_int("RANK", o.rank, 0, o.world - 1);
  o.local_rank = env_int("LOCAL_RANK", o.local_rank, 0, o.world - 1);
  return o;
}

struct RankGroup::Impl {
  RendezvousOptions options;
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  torch::Device device = torch::kCPU;  // where the collectives' tensors must be
  int64_t sequence = 0;                // keys of the store's exchanges, the same on every rank
  std::string activity = "start-up";
  bool broken = false;

  // the heartbeat: a counter per rank in the store, advanced by a thread of its own
  std::thread heartbeat;
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;

  std::string key(const std::string& what) { return "x" + std::to_string(sequence) + "/" + what; }

  void beat(c10::intrusive_ptr<c10d::TCPStore> own) {
    const std::string k = "heartbeat/" + std::to_string(options.rank);
    std::unique_lock<std::mutex> lock(mutex);
    while (!stopping) {
      try {
        own->add(k, 1);
      } catch (const std::exception&) {
        return;  // the store is gone; the next collective reports it
      }
      cv.wait_for(lock, options.heartbeat_grace / 6);
    }
  }

  // the ranks whose heartbeat stood still over the grace period; throws when the store is gone
  std::vector<int> silent_ranks() {
    auto counts = [&] {
      std::vector<int64_t> c;
      for (int r = 0; r < options.world; ++r)
        c.push_back(store->add("heartbeat/" + std::to_string(r), 0));
      return c;
    };
    const auto before = counts();
    std::this_thread::sleep_for(options.heartbeat_grace);
    const auto after = counts();
    std::vector<int> silent;
    for (int r = 0; r < options.world; ++r)
      if (r != options.rank && after[r] == before[r]) silent.push_back(r);
    return silent;
  }
};

RankGroup::RankGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RankGroup::~RankGroup() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->heartbeat.joinable()) impl_->heartbeat.join();
  if (impl_->broken) {
    // a broken group may hold work that never completes: leave it to the process's exit
    (void)impl_->pg.release();
    (void)impl_->store.release();
  }
}

std::unique_ptr<RankGroup> RankGroup::join(const RendezvousOptions& o) {
  if (o.world < 1 || o.rank < 0 || o.rank >= o.world)
    throw DistributedError("rank " + std::to_string(o.rank) + " is outside a world of " +
                           std::to_string(o.world));
  // c10d logs its retries and timeouts through glog on stderr; the errors here say it in one
  // line (ADASCALE_C10D_LOG=1 keeps its log)
  if (const char* keep = std::getenv("ADASCALE_C10D_LOG"); !keep || std::string(keep) != "1")
    FLAGS_minloglevel = google::GLOG_FATAL;
  auto impl = std::make_unique<Impl>();
  impl->options = o;
  const std::string where = o.master_addr + ":" + std::to_string(o.port);
  const auto deadline = Clock::now() + o.timeout;
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(o.port);
  so.isServer = o.rank == 0;
  so.numWorkers = static_cast<size_t>(o.world);
  so.waitWorkers = false;
  so.timeout = std::max<std::chrono::milliseconds>(o.timeout, std::chrono::seconds(1));
  try {
    impl->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
  } catch (const std::exception& e) {
    if (o.rank == 0)
      throw DistributedError("rendezvous: rank 0 cannot serve the store on " + where + " (" +
                             std::string(e.what()).substr(0, 120) + ")");
    throw DistributedError("rendezvous: rank " + std::to_string(o.rank) + " reached no rank 0 at " +
                           where + " within " + seconds_text(o.timeout));
  }
  auto& store = *impl->store;
  try {
    const std::string me = "rank/" + std::to_string(o.rank);
    if (store.add(me, 1) > 1)
      throw DistributedError("rendezvous: rank " + std::to_string(o.rank) +
                             " was started twice (check RANK)");
    store.add("joined", 1);
    for (;;) {
      const int64_t joined = store.add("joined", 0);
      if (joined >= o.world) break;
      if (Clock::now() > deadline) {
        std::string missing;
        for (int r = 0; r < o.world; ++r)
          if (!store.check({"rank/" + std::to_string(r)}))
            missing += (missing.empty() ? "" : ", ") + std::to_string(r);
        throw DistributedError("rendezvous at " + where + " timed out after " +
                               seconds_text(o.timeout) + ": " + std::to_string(joined) + " of " +
                               std::to_string(o.world) + " ranks joined (missing: rank " + missing +
                               ")");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  } catch (const DistributedError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistributedError("rendezvous at " + where +
                           " failed: " + std::string(e.what()).substr(0, 160));
  }

  if (o.backend != "gloo" && o.backend != "nccl")
    throw DistributedError("unknown collective backend '" + o.backend + "' (gloo or nccl)");
#ifdef ADASCALE_WITH_CUDA
  if (o.backend == "nccl") {
    auto nccl = c10d::ProcessGroupNCCL::Options::create();
    nccl->timeout = o.timeout;
    impl->device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(o.local_rank));
    impl->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        c10::make_intrusive<c10d::PrefixStore>("nccl", impl->store), o.rank, o.world, nccl);
  }
#else
  if (o.backend == "nccl")
    throw DistributedError("the nccl backend needs a CUDA build of LibTorch; this one has Gloo");
#endif
  auto gloo = c10d::ProcessGroupGloo::Options::create(o.timeout);
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(
        local_address_towards(o.master_addr, o.port)));
  try {
    if (!impl->pg)
      impl->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
          c10::make_intrusive<c10d::PrefixStore>("gloo", impl->store), o.rank, o.world, gloo);
  } catch (const std::exception& e) {
    throw DistributedError(
        "rank " + std::to_string(o.rank) +
        " could not connect to the other ranks: " + std::string(e.what()).substr(0, 160));
  }
  // the heartbeat talks to the store over a connection of its own
  c10d::TCPStoreOptions client = so;
  client.isServer = false;
  auto own = c10::make_intrusive<c10d::TCPStore>(o.master_addr, client);
  Impl* raw = impl.get();
  impl->heartbeat = std::thread([raw, own] { raw->beat(own); });
  return std::unique_ptr<RankGroup>(new RankGroup(std::move(impl)));
}

int RankGroup::rank() const { return impl_->options.rank; }
int RankGroup::world() const { return impl_->options.world; }
int RankGroup::local_rank() const { return impl_->options.local_rank; }
void RankGroup::set_activity(std::string activity) { impl_->activity = std::move(activity); }

void RankGroup::fail(const std::string& what) {
  impl_->broken = true;
  const std::string during = " during " + impl_->activity;
  std::vector<int> silent;
  try {
    silent = impl_->silent_ranks();
  } catch (const std::exception&) {
    throw DistributedError("rank 0 (the rendezvous host) stopped" + during + "; rank " +
                           std::to_string(rank()) + " gives up");
  }
  if (!silent.empty()) {
    std::string names;
    for (int r : silent) names += (names.empty() ? "" : ", ") + std::to_string(r);
    throw DistributedError("rank " + names + " stopped" + during + " (no heartbeat for " +
                           seconds_text(impl_->options.heartbeat_grace) + "); rank " +
                           std::to_string(rank()) + " gives up");
  }
  throw DistributedError("a collective failed" + during + " on rank " + std::to_string(rank()) +
                         ": " + what.substr(0, 200));
}

void RankGroup::require_same(const std::string& what, const std::string& text) {
  auto& s = *impl_->store;
  const std::string base = impl_->key(what);
  ++impl_->sequence;
  try {
    s.set(base + "/" + std::to_string(rank()), bytes_of(text));
    const std::string diff = first_difference(text_of(s.get(base + "/0")), text);
    s.set(base + "/verdict/" + std::to_string(rank()),
          bytes_of(diff.empty()
                       ? ""
                       : "rank " + std::to_string(rank()) + " differs from rank 0 at " + diff));
    std::string verdict;
    for (int r = 0; r < world() && verdict.empty(); ++r)
      verdict = text_of(s.get(base + "/verdict/" + std::to_string(r)));
    // rank 0 hosts the store: it stays until every rank has read the verdicts
    s.add(base + "/read", 1);
    const auto until = Clock::now() + std::chrono::seconds(10);
    while (leader() && s.add(base + "/read", 0) < world() && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!verdict.empty()) throw DistributedError("ranks disagree on the " + what + ": " + verdict);
  } catch (const DistributedError&) {
    throw;
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

std::string RankGroup::share(const std::string& key, const std::string& text) {
  auto& s = *impl_->store;
  const std::string k = impl_->key("share/" + key);
  ++impl_->sequence;
  try {
    if (leader()) s.set(k, bytes_of(text));
    return leader() ? text : text_of(s.get(k));
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

namespace {

// one flat buffer per dtype, in order, so each collective moves one tensor
template <typename Fn>
void flat_by_dtype(const std::vector<torch::Tensor>& tensors, Fn&& collective) {
  std::map<int, std::vector<torch::Tensor>> groups;
  for (const auto& t : tensors)
    if (t.defined() && t.numel() > 0) groups[static_cast<int>(t.scalar_type())].push_back(t);
  for (auto& [type, group] : groups) {
    std::vector<torch::Tensor> flat;
    for (const auto& t : group) flat.push_back(t.detach().reshape(-1));
    auto buffer = torch::cat(flat);
    collective(buffer);
    int64_t at = 0;
    torch::NoGradGuard no_grad;
    for (auto& t : group) {
      t.detach().copy_(buffer.slice(0, at, at + t.numel()).view(t.sizes()));
      at += t.numel();
    }
  }
}

}  // namespace

void RankGroup::broadcast(std::vector<torch::Tensor> tensors) {
  if (world() == 1) return;
  flat_by_dtype(tensors, [&](torch::Tensor& buffer) {
    buffer = buffer.to(impl_->device);
    std::vector<at::Tensor> v{buffer};
    try {
      impl_->pg->broadcast(v)->wait(impl_->options.timeout);
    } catch (const std::exception& e) {
      fail(e.what());
    }
  });
}

void RankGroup::broadcast_state(std::map<std::string, torch::Tensor>& state) {
  std::string names;
  std::vector<torch::Tensor> tensors;
  for (auto& [name, t] : state) {
    names += name + "\n";
    tensors.push_back(t);
  }
  require_same("state names", names);
  broadcast(tensors);
}

std::function<void()> RankGroup::allreduce_sum_async(torch::Tensor t) {
  if (world() == 1) return [] {};
  // staged where the backend needs it (nccl: the rank's GPU), copied back by the waiter
  const bool staged = t.device() != impl_->device;
  auto on_group = staged ? t.to(impl_->device) : t;
  std::vector<at::Tensor> v{on_group};
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = impl_->pg->allreduce(v);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  return [this, work, t, on_group, staged]() mutable {
    try {
      work->wait(impl_->options.timeout);
    } catch (const std::exception& e) {
      fail(e.what());
    }
    if (staged) t.copy_(on_group);
  };
}

void RankGroup::allreduce_sum(torch::Tensor t) { allreduce_sum_async(std::move(t))(); }

void RankGroup::barrier() {
  if (world() == 1) return;
  try {
    impl_->pg->barrier()->wait(impl_->options.timeout);
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

void RankGroup::require_same_value(const std::string& what, int64_t value) {
  if (world() == 1) return;
  auto t = torch::tensor({value, -value}, torch::kInt64).to(impl_->device);
  std::vector<at::Tensor> v{t};
  try {
    c10d::AllreduceOptions max;
    max.reduceOp = c10d::ReduceOp::MAX;
    impl_->pg->allreduce(v, max)->wait(impl_->options.timeout);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  t = t.to(torch::kCPU);
  if (t[0].item<int64_t>() != -t[1].item<int64_t>())
    throw DistributedError(what + " differs between ranks during " + impl_->activity);
}

RankGroup* current_group() { return t_group; }
RankScope::RankScope(RankGroup* group) : previous_(t_group) { t_group = group; }
RankScope::~RankScope() { t_group = previous_; }
int current_rank() { return t_group ? t_group->rank() : 0; }
int current_local_rank() { return t_group ? t_group->local_rank() : 0; }
int current_world() { return t_group ? t_group->world() : 1; }

}  // namespace adascale::trainer
