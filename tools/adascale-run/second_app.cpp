#include "tools/adascale-run/second_app.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tools/adascale-run/failure.h"

namespace adascale::run_cli {
namespace {

void close_fd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

}  // namespace

SecondApp::SecondApp(const std::vector<std::string>& args) {
  int to_child[2] = {-1, -1}, from_child[2] = {-1, -1}, output[2] = {-1, -1};
  auto fail = [&](const char* what) {
    const std::string message = std::string(what) + ": " + std::strerror(errno);
    for (int* fd :
         {&to_child[0], &to_child[1], &from_child[0], &from_child[1], &output[0], &output[1]})
      close_fd(fd);
    throw Failure("--second-bundle: " + message);
  };
  // close-on-exec everywhere: the child gets its ends through dup2, nothing else leaks
  if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0 ||
      ::pipe2(output, O_CLOEXEC) != 0)
    fail("pipe");
  // The child's descriptors are fixed numbers past the standard ones.
  constexpr int kChildRead = 3, kChildWrite = 4;
  std::vector<std::string> all = args;
  all.insert(all.begin(), "adascale-run");
  all.push_back("--app-link");
  all.push_back(std::to_string(kChildRead) + "," + std::to_string(kChildWrite));
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    // only async-signal-safe calls from here to exec
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // move the ends clear of 3 and 4 first, in case a pipe got those numbers
    const int r = ::fcntl(to_child[0], F_DUPFD_CLOEXEC, 10),
              w = ::fcntl(from_child[1], F_DUPFD_CLOEXEC, 10);
    if (r < 0 || w < 0 || ::dup2(r, kChildRead) < 0 || ::dup2(w, kChildWrite) < 0 ||
        ::dup2(output[1], STDOUT_FILENO) < 0)
      ::_exit(127);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  close_fd(&to_child[0]);
  close_fd(&from_child[1]);
  close_fd(&output[1]);
  output_fd_ = output[0];
  link_ = std::make_unique<scenario::AppLink>(from_child[0], to_child[1]);
}

SecondApp::~SecondApp() {
  link_.reset();
  close_fd(&output_fd_);
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

SecondApp::Outcome SecondApp::finish() {
  std::string text;
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::read(output_fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(chunk, static_cast<size_t>(n));
  }
  close_fd(&output_fd_);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  Outcome out;
  out.output = std::move(text);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    out.failure = "the second app failed (" +
                  (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                     : "signal " + std::to_string(WTERMSIG(status))) +
                  "; its error is above)";
  return out;
}

std::unique_ptr<scenario::AppLink> app_link_from(const std::string& text) {
  int r = -1, w = -1;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%d,%d%c", &r, &w, &tail) != 2 || r < 3 || w < 3 || r == w ||
      ::fcntl(r, F_GETFD) < 0 || ::fcntl(w, F_GETFD) < 0)
    throw Failure("--app-link: expected two open descriptors R,W, got '" + text + "'");
  // ours now: not passed on to whatever this process execs (burners and balloons are forked
  // without exec and do hold them, but die with this process: tools/scenario/contention.h)
  ::fcntl(r, F_SETFD, FD_CLOEXEC);
  ::fcntl(w, F_SETFD, FD_CLOEXEC);
  return std::make_unique<scenario::AppLink>(r, w);
}

}  // namespace adascale::run_cli
