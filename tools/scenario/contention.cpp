#include "tools/scenario/contention.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>

namespace adascale::scenario {
namespace {

// The parent may be multi-threaded: between fork and _exit a child only makes system calls.
void become_disposable_child(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(0);  // the parent died before prctl took effect
  // Ctrl-C reaches the whole process group: children simply die, the parent reaps them.
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGPIPE, SIG_DFL);
}

[[noreturn]] void burn() {
  volatile unsigned long counter = 0;
  for (;;) counter = counter + 1;
}

[[noreturn]] void hold_balloon(size_t bytes, int ready_fd) {
  void* memory = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) ::_exit(2);
  // One write per page commits it; the kernel then counts it as used (MemAvailable drops).
  const long page = ::sysconf(_SC_PAGESIZE);
  auto* bytes_ptr = static_cast<volatile unsigned char*>(memory);
  for (size_t offset = 0; offset < bytes; offset += static_cast<size_t>(page > 0 ? page : 4096))
    bytes_ptr[offset] = 1;
  const char ready = 1;
  while (::write(ready_fd, &ready, 1) < 0 && errno == EINTR) {
  }
  ::close(ready_fd);
  for (;;) ::pause();
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

void kill_and_reap(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

ContentionProcesses::~ContentionProcesses() { stop_all(); }

void ContentionProcesses::start_burners(int count) {
  const pid_t parent = ::getpid();
  for (int i = 0; i < count; ++i) {
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("cannot fork a CPU burner: " + errno_text());
    if (pid == 0) {
      become_disposable_child(parent);
      burn();
    }
    burners_.push_back(pid);
  }
}

void ContentionProcesses::stop_burners(int count) {
  for (int i = 0; i < count && !burners_.empty(); ++i) {
    kill_and_reap(burners_.back());
    burners_.pop_back();
  }
}

void ContentionProcesses::allocate_balloon(double mib) {
  start_balloon(mib);
  read_ready(balloons_.size() - 1, true);
}

void ContentionProcesses::start_balloon(double mib) {
  const size_t bytes = static_cast<size_t>(mib * 1024.0 * 1024.0);
  if (bytes == 0) throw std::runtime_error("a memory balloon needs more than 0 bytes");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw std::runtime_error("cannot create a pipe for a memory balloon: " + errno_text());
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const std::string why = errno_text();
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::runtime_error("cannot fork a memory balloon: " + why);
  }
  if (pid == 0) {
    become_disposable_child(parent);
    ::close(fds[0]);
    hold_balloon(bytes, fds[1]);
  }
  ::close(fds[1]);
  // Tracked before anything can throw, so stop_all() still finds it.
  balloons_.push_back({pid, mib, fds[0]});
}

size_t ContentionProcesses::poll_balloons() {
  size_t filling = 0;
  for (size_t i = 0; i < balloons_.size(); ++i)
    if (balloons_[i].ready_fd >= 0 && !read_ready(i, false)) ++filling;
  return filling;
}

bool ContentionProcesses::read_ready(size_t index, bool wait) {
  Balloon& balloon = balloons_[index];
  if (balloon.ready_fd < 0) return true;
  if (!wait) {
    pollfd p{balloon.ready_fd, POLLIN, 0};
    int n;
    while ((n = ::poll(&p, 1, 0)) < 0 && errno == EINTR) {
    }
    if (n == 0) return false;  // nothing to read yet: still filling
  }
  char ready = 0;
  ssize_t got;
  while ((got = ::read(balloon.ready_fd, &ready, 1)) < 0 && errno == EINTR) {
  }
  if (got == 1) {
    ::close(balloon.ready_fd);
    balloon.ready_fd = -1;
    return true;
  }
  const double mib = balloon.mib;
  forget_balloon(index);
  throw std::runtime_error("memory balloon of " + std::to_string(mib) +
                           " MiB failed (mapping refused or child killed)");
}

void ContentionProcesses::forget_balloon(size_t index) {
  kill_and_reap(balloons_[index].pid);
  if (balloons_[index].ready_fd >= 0) ::close(balloons_[index].ready_fd);
  balloons_.erase(balloons_.begin() + static_cast<std::ptrdiff_t>(index));
}

void ContentionProcesses::release_balloon() {
  if (!balloons_.empty()) forget_balloon(balloons_.size() - 1);
}

void ContentionProcesses::stop_all() {
  // Signal everyone first so that the children stop competing while the others are reaped.
  for (pid_t pid : pids()) ::kill(pid, SIGKILL);
  for (pid_t pid : pids()) kill_and_reap(pid);
  for (const Balloon& balloon : balloons_)
    if (balloon.ready_fd >= 0) ::close(balloon.ready_fd);
  burners_.clear();
  balloons_.clear();
}

double ContentionProcesses::balloon_mib() const {
  double total = 0;
  for (const Balloon& balloon : balloons_) total += balloon.mib;
  return total;
}

std::vector<pid_t> ContentionProcesses::pids() const {
  std::vector<pid_t> all = burners_;
  for (const Balloon& balloon : balloons_) all.push_back(balloon.pid);
  return all;
}

}  // namespace adascale::scenario
