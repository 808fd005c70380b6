// LocalLauncher: `adascale train --nproc N` on one machine. Starts N copies of a command as the
// ranks of one run, each with torchrun's variables (MASTER_ADDR=127.0.0.1, a free MASTER_PORT,
// RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), and waits for them. The ranks find each other
// and detect each other's failures by themselves (trainer/rank_group.h); the launcher reports the
// first rank that failed and, should the others not end within the grace period, stops them.
// Ranks die with the launcher (PR_SET_PDEATHSIG); SIGINT and SIGTERM are passed on to them.
#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

namespace adascale::trainer {

struct LaunchOptions {
  int nproc = 2;
  int port = 0;  // 0: a free port of the loopback interface
  std::chrono::seconds grace{60};
};

// a port of the loopback interface that was free a moment ago
int free_loopback_port();

// argv: the program (an absolute path or /proc/self/exe) and its arguments. Returns 0 when every
// rank exits with 0; otherwise the first failing rank's exit status (1 for a signal). `log` gets
// one line per rank started and one for the first failure.
int launch_local_ranks(const std::vector<std::string>& argv, const LaunchOptions& options,
                       std::ostream& log);

}  // namespace adascale::trainer
