// Gloo allreduce latency between two ranks, each a process of its own on this machine (forked
// before either starts a thread), through RankGroup as training uses it: the sizes of one
// BatchNorm layer's statistics (what synchronised BatchNorm would add, twice per layer and step),
// of the quick network's gradients and of 4 MiB. Prints the median per size.
//   allreduce_latency [--repeats N]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "trainer/local_launcher.h"
#include "trainer/rank_group.h"

using namespace adascale::trainer;

namespace {

void rank_main(int rank, int port, int repeats) {
  torch::set_num_threads(1);
  RendezvousOptions o;
  o.port = port;
  o.rank = rank;
  o.world = 2;
  auto group = RankGroup::join(o);
  // 2 x 64: a 64-channel BatchNorm's sums; 77,754: the quick network's gradients; 1 M floats
  for (const int64_t n : {int64_t{128}, int64_t{77754}, int64_t{1} << 20}) {
    auto t = torch::ones({n});
    std::vector<double> us;
    for (int i = 0; i < repeats + 10; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      group->allreduce_sum(t);
      const double d =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      if (i >= 10) us.push_back(d);  // the first ones set up the pairs
    }
    std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
    if (rank == 0)
      std::printf("allreduce of %7lld floats (%8.1f KiB): median %8.1f us over %d\n",
                  static_cast<long long>(n), n * 4 / 1024.0, us[us.size() / 2], repeats);
  }
  group->barrier();
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 500;
  if (argc == 3 && std::strcmp(argv[1], "--repeats") == 0)
    repeats = std::max(1, std::atoi(argv[2]));
  const int port = free_loopback_port();
  const pid_t child = fork();
  if (child == 0) {
    rank_main(1, port, repeats);
    _exit(0);
  }
  rank_main(0, port, repeats);
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
