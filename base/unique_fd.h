// UniqueFd: owns one POSIX file descriptor and closes it on scope exit, so that every early
// return releases what was opened. Header-only (the adaptation loop's sources are also compiled
// alone, into the ThreadSanitizer test). std + POSIX only.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace adascale::base {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  // gives up ownership (to a call that takes the descriptor over, such as gzdopen)
  int release() { return std::exchange(fd_, -1); }
  // closes the current descriptor, if any, and owns `fd`; errno is left as it was
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      const int saved = errno;
      ::close(fd_);
      errno = saved;
    }
    fd_ = fd;
  }
  // closes now and reports whether that worked (errno set when not): after writing, a failed
  // close can be the first report of a failed write
  bool close() {
    const int fd = release();
    return fd < 0 || ::close(fd) == 0;
  }

 private:
  int fd_ = -1;
};

}  // namespace adascale::base
