// Resident memory of N threads classifying with one model and a session each, against N separate
// single handles (adascale_open: one mapped bundle and prepared weights per handle), and against one
// session. Every configuration runs in a fresh child process (this program re-executed), each
// thread prepares every branch of the bundle, runs it once and keeps it (unlimited budget); then
// the child reports VmRSS and its peak (VmHWM) from /proc/self/status.
//
//   runtime_session_memory [BUNDLE] [--backend xnnpack|plain|reference] [--threads N]
//                          [--throughput BRANCH]
//
// --throughput also times 4 threads classifying with BRANCH, 4 sessions on one model against 4
// handles: sessions on one branch take turns on each operator that holds weights.
//
// Without BUNDLE it writes the runtime tests' small model (too small for a meaningful ratio).
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "adascale.h"
#include "runtime_test_util.h"

namespace {

struct Rss {
  long rss_kb = -1, hwm_kb = -1;
};

Rss read_rss() {
  Rss r;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) r.rss_kb = std::atol(line.c_str() + 6);
    if (line.rfind("VmHWM:", 0) == 0) r.hwm_kb = std::atol(line.c_str() + 6);
  }
  return r;
}

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "runtime_session_memory: %s\n", message.c_str());
  std::exit(1);
}

// Selects every branch and runs it once on a constant image; keeps them all.
template <typename Select, typename Run>
void run_every_branch(size_t branches, const std::vector<std::string>& names, size_t image,
                      size_t classes, Select select, Run run) {
  std::vector<float> input(image, 0.5f), logits(classes);
  for (size_t i = 0; i < branches; ++i) {
    if (select(names[i].c_str()) != ADASCALE_OK) die("cannot select " + names[i]);
    if (run(input.data(), input.size(), logits.data(), logits.size()) != ADASCALE_OK)
      die("cannot run " + names[i]);
  }
}

struct ModelShape {
  std::vector<std::string> names;
  size_t image = 0, classes = 0;
};

ModelShape shape_of(const adascale_model* model) {
  ModelShape s;
  size_t count = 0;
  adascale_model_branch_count(model, &count);
  for (size_t i = 0; i < count; ++i) {
    adascale_branch_info info;
    adascale_model_branch_info_at(model, i, &info);
    s.names.emplace_back(info.name);
  }
  int64_t dims[4];
  adascale_model_input_shape(model, dims);
  s.image = static_cast<size_t>(dims[1] * dims[2] * dims[3]);
  adascale_model_class_count(model, &s.classes);
  return s;
}

// mode "sessions": one model, n sessions; "handles": n adascale_open_ex handles. One thread each.
// Prints VmRSS and VmHWM in KiB and the number of branch preparations.
int child(const std::string& mode, int n, const char* path, adascale_backend backend, int threads) {
  std::vector<std::thread> workers;
  if (mode == "sessions") {
    adascale_model* model = nullptr;
    if (adascale_model_open(path, backend, threads, &model) != ADASCALE_OK)
      die(adascale_model_open_error());
    const ModelShape shape = shape_of(model);
    std::vector<adascale_session*> sessions(static_cast<size_t>(n), nullptr);
    for (auto& session : sessions) {
      if (adascale_session_new(model, &session) != ADASCALE_OK) die("cannot create a session");
      adascale_session_set_memory_budget(session, static_cast<size_t>(-1));
    }
    for (adascale_session* session : sessions)
      workers.emplace_back([&shape, session] {
        run_every_branch(
            shape.names.size(), shape.names, shape.image, shape.classes,
            [session](const char* name) { return adascale_session_select(session, name); },
            [session](const float* in, size_t count, float* out, size_t capacity) {
              return adascale_session_run(session, in, count, out, capacity);
            });
      });
    for (std::thread& worker : workers) worker.join();
    const Rss rss = read_rss();
    adascale_model_cache cache;
    adascale_model_cache_info(model, &cache);
    std::printf("%ld %ld %llu\n", rss.rss_kb, rss.hwm_kb,
                static_cast<unsigned long long>(cache.preparations));
    for (adascale_session* session : sessions) adascale_session_free(session);
    adascale_model_free(model);
    return 0;
  }
  std::vector<adascale_runtime*> handles(static_cast<size_t>(n), nullptr);
  std::atomic<unsigned long long> preparations{0};
  for (auto& handle : handles) {
    char message[256] = {0};
    if (adascale_open_ex(path, backend, threads, &handle, message, sizeof(message)) != ADASCALE_OK)
      die(message);
    adascale_set_memory_budget(handle, static_cast<size_t>(-1));
  }
  for (adascale_runtime* handle : handles)
    workers.emplace_back([handle, &preparations] {
      size_t count = 0, classes = 0;
      adascale_branch_count(handle, &count);
      adascale_class_count(handle, &classes);
      preparations += count;
      std::vector<std::string> names;
      for (size_t i = 0; i < count; ++i) {
        adascale_branch_info info;
        adascale_branch_info_at(handle, i, &info);
        names.emplace_back(info.name);
      }
      int64_t dims[4];
      adascale_input_shape(handle, dims);
      run_every_branch(
          count, names, static_cast<size_t>(dims[1] * dims[2] * dims[3]), classes,
          [handle](const char* name) { return adascale_select(handle, name); },
          [handle](const float* in, size_t n_in, float* out, size_t capacity) {
            return adascale_run(handle, in, n_in, out, capacity);
          });
    });
  for (std::thread& worker : workers) worker.join();
  const Rss rss = read_rss();
  std::printf("%ld %ld %llu\n", rss.rss_kb, rss.hwm_kb, preparations.load());
  for (adascale_runtime* handle : handles) adascale_close(handle);
  return 0;
}

// Runs this program as a child in `mode` and returns what it printed.
std::string spawn(const std::string& mode, int n, const std::string& path,
                  const std::string& backend, int threads) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) die("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    const std::string count = std::to_string(n), thread_count = std::to_string(threads);
    ::execl("/proc/self/exe", "runtime_session_memory", "--child", mode.c_str(), count.c_str(),
            path.c_str(), "--backend", backend.c_str(), "--threads", thread_count.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  std::string out;
  char buffer[256];
  ssize_t got;
  while ((got = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0)
    out.append(buffer, static_cast<size_t>(got));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die(mode + " child failed");
  return out;
}

// Inferences per second of 4 threads running `branch` `runs` times each, one session each on one
// model (sessions) or one handle each.
double throughput(const std::string& path, adascale_backend backend, int threads,
                  const std::string& branch, bool sessions) {
  constexpr int kThreads = 4, kRuns = 500;
  adascale_model* model = nullptr;
  if (adascale_model_open(path.c_str(), backend, threads, &model) != ADASCALE_OK)
    die(adascale_model_open_error());
  const ModelShape shape = shape_of(model);
  std::vector<adascale_session*> own(kThreads, nullptr);
  std::vector<adascale_runtime*> handles(kThreads, nullptr);
  for (int t = 0; t < kThreads; ++t) {
    const adascale_status status =
        sessions ? adascale_session_new(model, &own[t])
                 : adascale_open_ex(path.c_str(), backend, threads, &handles[t], nullptr, 0);
    if (status != ADASCALE_OK) die("cannot create a session or handle");
    if ((sessions ? adascale_session_select(own[t], branch.c_str())
                  : adascale_select(handles[t], branch.c_str())) != ADASCALE_OK)
      die("cannot select " + branch);
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t)
    workers.emplace_back([&, t] {
      std::vector<float> input(shape.image, 0.5f), logits(shape.classes);
      for (int r = 0; r < kRuns; ++r) {
        const adascale_status status =
            sessions ? adascale_session_run(own[t], input.data(), input.size(), logits.data(),
                                            logits.size())
                     : adascale_run(handles[t], input.data(), input.size(), logits.data(),
                                    logits.size());
        if (status != ADASCALE_OK) die("run failed");
      }
    });
  for (std::thread& worker : workers) worker.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (int t = 0; t < kThreads; ++t) {
    adascale_session_free(own[t]);
    adascale_close(handles[t]);
  }
  adascale_model_free(model);
  return kThreads * kRuns / seconds;
}

adascale_backend parse_backend(const std::string& name) {
  if (name == "xnnpack") return ADASCALE_BACKEND_XNNPACK;
  if (name == "plain") return ADASCALE_BACKEND_XNNPACK_PLAIN;
  if (name == "reference") return ADASCALE_BACKEND_REFERENCE;
  die("unknown backend " + name);
}

}  // namespace

int main(int argc, char** argv) {
  std::string path, backend = "xnnpack", mode, timed_branch;
  int threads = 1, n = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--backend" && i + 1 < argc) {
      backend = argv[++i];
    } else if (arg == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (arg == "--throughput" && i + 1 < argc) {
      timed_branch = argv[++i];
    } else if (arg == "--child" && i + 2 < argc) {
      mode = argv[++i];
      n = std::atoi(argv[++i]);
    } else if (arg.rfind("--", 0) == 0) {
      die("unknown option " + arg);
    } else {
      path = arg;
    }
  }
  if (!mode.empty()) return child(mode, n, path.c_str(), parse_backend(backend), threads);
  parse_backend(backend);
  if (path.empty()) {
    adascale::BundleWriter writer;
    adascale::testing::build_small_model(&writer);
    path = adascale::testing::temp_path("memory.bundle");
    if (!writer.write(path).ok()) die("cannot write " + path);
  }
  std::printf("bundle %s, backend %s, %d thread(s) per inference\n", path.c_str(), backend.c_str(),
              threads);
  std::printf("%-28s %10s %10s %9s %9s\n", "configuration", "VmRSS MiB", "VmHWM MiB", "x 1 sess.",
              "prepared");
  double one = 0;
  const struct {
    const char* mode;
    int n;
    const char* label;
  } rows[] = {{"sessions", 0, "model open, no session"},
              {"sessions", 1, "1 session"},
              {"sessions", 4, "4 sessions, one model"},
              {"handles", 1, "1 handle (adascale_open)"},
              {"handles", 4, "4 handles (adascale_open)"}};
  for (const auto& row : rows) {
    long rss = 0, hwm = 0;
    unsigned long long extra = 0;
    const std::string out = spawn(row.mode, row.n, path, backend, threads);
    if (std::sscanf(out.c_str(), "%ld %ld %llu", &rss, &hwm, &extra) != 3)
      die("unexpected child output: " + out);
    if (std::string(row.mode) == "sessions" && row.n == 1) one = static_cast<double>(rss);
    const std::string ratio = one > 0 ? std::to_string(rss / one).substr(0, 4) : "-";
    std::printf("%-28s %10.1f %10.1f %9s %9llu\n", row.label, rss / 1024.0, hwm / 1024.0,
                ratio.c_str(), extra);
  }
  if (!timed_branch.empty()) {
    // alternated, three rounds each, so that a noisy minute hits both
    for (int round = 0; round < 3; ++round)
      for (const bool sessions : {true, false})
        std::printf("%s, 4 threads on %s: %.0f inferences/s\n",
                    sessions ? "4 sessions, one model" : "4 handles", timed_branch.c_str(),
                    throughput(path, parse_backend(backend), threads, timed_branch, sessions));
  }
  return 0;
}
