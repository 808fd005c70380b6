// Durable file replacement: what a writer does so that a reader, a crash or a power cut never
// sees a half-written file or folder at the final path. std + POSIX only, so the runtime, the
// trainer and the data writers share one definition.
//
//   write_file_atomic(path, bytes)  a unique temporary sibling, fsync, rename over path, fsync of
//                                   the folder;
//   write_path_atomic(path, write)  the same for writers that create the file from a path
//                                   themselves (the HDF5 library): write(temp), then as above;
//   replace_path(temp, path)        moves a finished temporary file or folder onto path; an
//                                   existing folder is swapped out in one step (renameat2
//                                   RENAME_EXCHANGE), so path always names a complete one;
//   unique_temp_path(path, tag)     "<path>.<tag>.<pid>.<n>", unique per writer and call;
//   remove_stale_temps(path, tag)   removes "<path>.<tag>.<pid>.*" left by dead processes.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace adascale::base {

// Each returns false and sets *error (one line, naming the path) on failure.
bool fsync_path(const std::string& path, std::string* error);
// fsyncs every regular file below a folder, then the folder itself (and its subfolders).
bool fsync_tree(const std::string& folder, std::string* error);
bool fsync_parent(const std::string& path, std::string* error);
// Both refuse to replace a folder (EISDIR).
bool write_file_atomic(const std::string& path, const void* data, size_t bytes, std::string* error);
// write(temp) must leave the complete, closed file at temp; stale temporaries of dead writers are
// removed first. When write throws, the temporary is removed and the exception goes on.
bool write_path_atomic(const std::string& path,
                       const std::function<void(const std::string& temp)>& write,
                       std::string* error);
bool replace_path(const std::string& temp, const std::string& path, std::string* error);

std::string unique_temp_path(const std::string& path, const std::string& tag = "tmp");
void remove_stale_temps(const std::string& path, const std::string& tag = "tmp");

}  // namespace adascale::base
