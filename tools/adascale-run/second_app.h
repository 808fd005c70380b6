// --second-bundle: the second of two adaptive apps on one device (tools/scenario/app_link.h), a
// child process of this one running adascale-run with the other bundle and --app-link. Its
// standard output comes back through a pipe, printed after this app's summary; its standard
// error is shared. The child dies with this process (PR_SET_PDEATHSIG) and is killed and reaped
// when this object goes without finish().
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "tools/scenario/app_link.h"

namespace adascale::run_cli {

class SecondApp {
 public:
  // `args`: adascale-run's arguments for the child, without --app-link. Throws Failure.
  explicit SecondApp(const std::vector<std::string>& args);
  ~SecondApp();
  SecondApp(const SecondApp&) = delete;
  SecondApp& operator=(const SecondApp&) = delete;

  scenario::AppLink& link() { return *link_; }
  // Waits for the child to end: what it printed, and why it failed ("" when it did not).
  struct Outcome {
    std::string output, failure;
  };
  Outcome finish();

 private:
  pid_t pid_ = -1;
  int output_fd_ = -1;
  std::unique_ptr<scenario::AppLink> link_;
};

// "R,W" of --app-link: two open descriptor numbers. Throws Failure.
std::unique_ptr<scenario::AppLink> app_link_from(const std::string& text);

}  // namespace adascale::run_cli
