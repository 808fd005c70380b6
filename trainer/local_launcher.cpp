#include "trainer/local_launcher.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "base/unique_fd.h"
#include "trainer/rank_group.h"

namespace adascale::trainer {

namespace {

std::atomic<int> g_forward_signal{0};
extern "C" void remember_signal(int sig) { g_forward_signal = sig; }

}  // namespace

int free_loopback_port() {
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd.get() < 0 || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw DistributedError(std::string("no free port on the loopback interface: ") +
                           std::strerror(errno));
  return ntohs(a.sin_port);
}

namespace {

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const char* name = sigdescr_np(WTERMSIG(status));
    return "was killed by signal " + std::to_string(WTERMSIG(status)) +
           (name ? std::string(" (") + name + ")" : std::string());
  }
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

}  // namespace

int launch_local_ranks(const std::vector<std::string>& argv, const LaunchOptions& o,
                       std::ostream& log) {
  if (argv.empty()) throw DistributedError("launcher: no command");
  if (o.nproc < 1) throw DistributedError("launcher: --nproc must be >= 1");
  const int port = o.port > 0 ? o.port : free_loopback_port();
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  struct sigaction forward {};
  forward.sa_handler = remember_signal;
  sigemptyset(&forward.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &forward, &old_int);
  sigaction(SIGTERM, &forward, &old_term);

  // each rank's environment is built before fork: between fork and exec the child only makes
  // async-signal-safe calls
  const char* const ours[] = {
      "MASTER_ADDR=", "MASTER_PORT=", "RANK=", "LOCAL_RANK=", "WORLD_SIZE=", "LOCAL_WORLD_SIZE="};
  std::vector<std::string> inherited;
  for (char** e = environ; *e; ++e) {
    bool replaced = false;
    for (const char* v : ours) replaced = replaced || std::strncmp(*e, v, std::strlen(v)) == 0;
    if (!replaced) inherited.push_back(*e);
  }
  std::vector<std::vector<std::string>> envs(static_cast<size_t>(o.nproc), inherited);
  std::vector<std::vector<char*>> envps;
  for (int r = 0; r < o.nproc; ++r) {
    auto& env = envs[static_cast<size_t>(r)];
    for (const std::string& v :
         {std::string("MASTER_ADDR=127.0.0.1"), "MASTER_PORT=" + std::to_string(port),
          "RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r),
          "WORLD_SIZE=" + std::to_string(o.nproc), "LOCAL_WORLD_SIZE=" + std::to_string(o.nproc)})
      env.push_back(v);
    envps.emplace_back();
    for (auto& v : env) envps.back().push_back(v.data());
    envps.back().push_back(nullptr);
  }

  const pid_t launcher = getpid();
  std::vector<pid_t> pids;
  for (int r = 0; r < o.nproc; ++r) {
    const pid_t pid = fork();
    if (pid < 0) throw DistributedError(std::string("launcher: fork: ") + std::strerror(errno));
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != launcher) _exit(1);  // the launcher died before prctl
      execve(args[0], args.data(), envps[static_cast<size_t>(r)].data());
      static const char kFailed[] = "launcher: cannot start the rank's program\n";
      (void)!write(2, kFailed, sizeof kFailed - 1);
      _exit(127);
    }
    pids.push_back(pid);
    log << "rank " << r << ": pid " << pid << "\n";
  }
  log.flush();

  int result = 0, running = o.nproc;
  bool terminated = false;
  std::chrono::steady_clock::time_point deadline{};
  while (running > 0) {
    if (const int sig = g_forward_signal.exchange(0))
      for (pid_t p : pids)
        if (p > 0) kill(p, sig);
    int status = 0;
    const pid_t done = waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      for (size_t r = 0; r < pids.size(); ++r) {
        if (pids[r] != done) continue;
        pids[r] = -1;
        --running;
        const bool failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
        if (failed && result == 0) {
          result = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
          log << "rank " << r << " " << describe_status(status) << "\n";
          log.flush();
          deadline = std::chrono::steady_clock::now() + o.grace;
        }
      }
      continue;
    }
    if (result != 0 && std::chrono::steady_clock::now() > deadline) {
      // the others did not notice within the grace period: stop them, then for good
      for (pid_t p : pids)
        if (p > 0) kill(p, terminated ? SIGKILL : SIGTERM);
      if (!terminated) log << "stopping the remaining ranks\n";
      terminated = true;
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace adascale::trainer
