#include "base/durable_file.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/unique_fd.h"

namespace adascale::base {

namespace fs = std::filesystem;

namespace {

bool fail(std::string* error, const std::string& what, const std::string& path, int err) {
  if (error) *error = what + " " + path + ": " + std::strerror(err);
  return false;
}

// a file writer must not replace a folder: replace_path swaps a folder out and deletes it
bool is_folder(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string parent_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

bool fsync_path(const std::string& path, std::string* error) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.ok()) return fail(error, "cannot open", path, errno);
  // some file systems refuse fsync on folders (EINVAL): nothing more can be done there
  if (::fsync(fd.get()) != 0 && errno != EINVAL) return fail(error, "cannot fsync", path, errno);
  return true;
}

bool fsync_tree(const std::string& folder, std::string* error) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const auto status = it->symlink_status(ec);
    if (ec) break;
    if ((fs::is_regular_file(status) || fs::is_directory(status)) &&
        !fsync_path(it->path().string(), error))
      return false;
  }
  if (ec) {
    if (error) *error = "cannot list " + folder + ": " + ec.message();
    return false;
  }
  return fsync_path(folder, error);
}

bool fsync_parent(const std::string& path, std::string* error) {
  return fsync_path(parent_of(path), error);
}

std::string unique_temp_path(const std::string& path, const std::string& tag) {
  static std::atomic<unsigned long> counter{0};
  return path + "." + tag + "." + std::to_string(::getpid()) + "." + std::to_string(++counter);
}

void remove_stale_temps(const std::string& path, const std::string& tag) {
  const fs::path target(path);
  const std::string prefix = target.filename().string() + "." + tag + ".";
  std::error_code ec;
  for (fs::directory_iterator it(parent_of(path), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const size_t dot = rest.find('.');
    const std::string pid_text = rest.substr(0, dot);
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos ||
        pid_text.size() > 9)
      continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    // a live writer (this process included) may still be using its temporary
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::error_code rm;
    fs::remove_all(it->path(), rm);
  }
}

bool write_file_atomic(const std::string& path, const void* data, size_t bytes,
                       std::string* error) {
  if (is_folder(path)) return fail(error, "cannot replace", path, EISDIR);
  const std::string temp = unique_temp_path(path);
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.ok()) return fail(error, "cannot create", temp, errno);
  // the temporary goes whatever fails below
  auto give_up = [&](const char* what, int err) {
    fd.reset();
    ::unlink(temp.c_str());
    return fail(error, what, temp, err);
  };
  const char* p = static_cast<const char*>(data);
  size_t left = bytes;
  while (left > 0) {
    const ssize_t n = ::write(fd.get(), p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return give_up("cannot write", n < 0 ? errno : EIO);
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return give_up("cannot fsync", errno);
  if (!fd.close()) return give_up("cannot close", errno);
  if (!replace_path(temp, path, error)) {
    ::unlink(temp.c_str());
    return false;
  }
  return true;
}

bool write_path_atomic(const std::string& path,
                       const std::function<void(const std::string& temp)>& write,
                       std::string* error) {
  if (is_folder(path)) return fail(error, "cannot replace", path, EISDIR);
  remove_stale_temps(path);
  const std::string temp = unique_temp_path(path);
  try {
    write(temp);
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  if (!fsync_path(temp, error) || !replace_path(temp, path, error)) {
    ::unlink(temp.c_str());
    return false;
  }
  return true;
}

bool replace_path(const std::string& temp, const std::string& path, std::string* error) {
  if (!is_folder(path)) {
    // rename(2) replaces a file atomically
    if (::rename(temp.c_str(), path.c_str()) != 0)
      return fail(error, "cannot rename onto", path, errno);
    return fsync_parent(path, error);
  }
  // rename(2) cannot replace a non-empty folder: swap the two in one step, then drop the old one
  // (now at temp); a crash in between leaves a complete folder at path and a stale temp
  if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), RENAME_EXCHANGE) == 0) {
    if (!fsync_parent(path, error)) return false;
    std::error_code ec;
    fs::remove_all(temp, ec);
    return true;
  }
  if (errno != EINVAL && errno != ENOSYS) return fail(error, "cannot swap into place", path, errno);
  // a file system without exchange: two renames, with a moment in between where path is absent
  // (the old folder is then at "<path>.old.<pid>.<n>" and remove_stale_temps(path, "old") finds it)
  const std::string aside = unique_temp_path(path, "old");
  if (::rename(path.c_str(), aside.c_str()) != 0)
    return fail(error, "cannot move aside", path, errno);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::rename(aside.c_str(), path.c_str());
    return fail(error, "cannot rename onto", path, err);
  }
  if (!fsync_parent(path, error)) return false;
  std::error_code ec;
  fs::remove_all(aside, ec);
  return true;
}

}  // namespace adascale::base
