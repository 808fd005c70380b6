// Contention generators for scenario replay: CPU burners (one child process each, spinning in a
// busy loop) and memory balloons (a child process that maps X MiB, writes every page and then
// sleeps). Separate processes on purpose: the monitor counts load from this process's own threads
// as its own CPU use, not as contention. Every child is killed and reaped by stop_*(), stop_all()
// and the destructor; children also get SIGKILL when their parent dies (PR_SET_PDEATHSIG), so a
// crash or SIGKILL of the parent leaves nothing behind either. Some kernels send that signal
// when the forking thread ends, so start children from a thread that outlives them.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <vector>

namespace adascale::scenario {

class ContentionProcesses {
 public:
  ContentionProcesses() = default;
  ~ContentionProcesses();  // stop_all()
  ContentionProcesses(const ContentionProcesses&) = delete;
  ContentionProcesses& operator=(const ContentionProcesses&) = delete;

  // Throws std::runtime_error when fork fails (already started children stay tracked).
  void start_burners(int count);
  // Kills and reaps the `count` most recently started burners (all of them when fewer run).
  void stop_burners(int count);
  // Returns once the child has written every page; throws when the mapping or the child fails.
  void allocate_balloon(double mib);
  // Starts a balloon and returns while its child still writes its pages (up to seconds under
  // load), so that the caller can go on sampling; poll_balloons() tells when they are written.
  void start_balloon(double mib);
  // How many started balloons are still being filled, without waiting; throws (and forgets the
  // balloon) when one failed.
  size_t poll_balloons();
  // Kills and reaps the most recently allocated balloon; no-op without one.
  void release_balloon();
  void stop_all();

  int burners() const { return static_cast<int>(burners_.size()); }
  double balloon_mib() const;
  std::vector<pid_t> pids() const;  // every live child, burners first

 private:
  std::vector<pid_t> burners_;
  struct Balloon {
    pid_t pid = -1;
    double mib = 0;
    int ready_fd = -1;  // the child writes one byte once its pages are written; -1 after that
  };
  std::vector<Balloon> balloons_;
  // Reads a filling balloon's pipe: true once it is full, false while filling (only when not
  // `wait`); throws when the child failed.
  bool read_ready(size_t index, bool wait);
  void forget_balloon(size_t index);  // kills and reaps it, closes its pipe
};

// Kills `pid` with SIGKILL and waits for it (retrying on EINTR), so no zombie is left.
void kill_and_reap(pid_t pid);

}  // namespace adascale::scenario
