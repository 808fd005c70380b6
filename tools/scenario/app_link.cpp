#include "tools/scenario/app_link.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace adascale::scenario {
namespace {

constexpr size_t kMaxLine = 4096;  // messages are a few words: more is not the other app

}  // namespace

AppLink::AppLink(int read_fd, int write_fd) : read_fd_(read_fd), write_fd_(write_fd) {
  // a write to a gone reader must be an error here, not a signal that ends the process
  ::signal(SIGPIPE, SIG_IGN);
}

AppLink::~AppLink() {
  if (read_fd_ >= 0) ::close(read_fd_);
  if (write_fd_ >= 0) ::close(write_fd_);
}

void AppLink::send(const std::string& line) {
  const std::string text = line + "\n";
  size_t sent = 0;
  while (sent < text.size()) {
    const ssize_t n = ::write(write_fd_, text.data() + sent, text.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw ScenarioError("the other app has gone (sending '" + line +
                          "': " + std::strerror(errno) + ")");
    sent += static_cast<size_t>(n);
  }
}

bool AppLink::readable() const {
  if (buffer_.find('\n') != std::string::npos) return true;
  pollfd p{read_fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

std::string AppLink::receive() {
  for (;;) {
    const size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    if (buffer_.size() > kMaxLine) throw ScenarioError("the other app sent an overlong message");
    check_interrupt();
    pollfd p{read_fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, 100);
    if (ready < 0 && errno != EINTR)
      throw ScenarioError("poll: " + std::string(std::strerror(errno)));
    if (ready <= 0) continue;
    char chunk[256];
    const ssize_t n = ::read(read_fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw ScenarioError("the other app has gone (its end of the link closed)");
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

void AppLink::expect(const std::string& expected) {
  const std::string line = receive();
  if (line != expected)
    throw ScenarioError("the other app said '" + line + "', expected '" + expected + "'");
}

void run_background(const Scenario& s, const Workload& w, const AppLink& link) {
  const std::unique_ptr<AdaptationLoop> loop = start_loop(s, w);
  FrameRunner runner(w, s.frame_images);
  while (!link.readable()) {
    check_interrupt();
    const LoopChoice choice = loop_choice(*loop);
    int correct = 0;
    loop->report_latency(choice.branch,
                         runner.run(choice.branch, choice.threads, &correct) / s.frame_images,
                         choice.threads);
  }
  loop->stop();
}

void wait_until(double start_ms) {
  const double wait = std::min(start_ms - now_ms(), 10000.0);
  if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(wait));
}

}  // namespace adascale::scenario
