// Internal to the scenario replayer (scenario_run.h): two adaptive apps on one device. The first
// app (the leader, which plays the timeline's load) and a second one (the follower, another
// process with its own bundle and loop, which applies only the budget events) replay the same
// scenario side by side. They keep in step over a pair of pipes with one-line messages:
//   leader -> follower   "background"         run requests with your loop until the next message
//                        "calibrate"          measure your branches (you drive the load now)
//                        "run POLICY START"   replay POLICY from START (steady clock, ms)
//                        "end"                write your summary and exit
//   follower -> leader   "ready", "calibrated", "done"
// While one app calibrates, the other runs its adaptive loop: what each app's hindsight and
// oracle policies are measured against includes the other app, as it will be in the replay.
#pragma once

#include <string>

#include "tools/scenario/replay.h"

namespace adascale::scenario {

class AppLink {
 public:
  // Takes ownership of both descriptors (-1: none). Ignores SIGPIPE from then on: a gone
  // other side is an error of send().
  AppLink(int read_fd, int write_fd);
  ~AppLink();
  AppLink(const AppLink&) = delete;
  AppLink& operator=(const AppLink&) = delete;

  // Throws ScenarioError when the other side has gone.
  void send(const std::string& line);
  // Waits for the next line (interrupts are checked while waiting); throws ScenarioError when
  // the other side has gone or sent more than a line's worth without a newline.
  std::string receive();
  // The next line must be `expected`.
  void expect(const std::string& expected);
  // True once a line (or the end) is waiting, without reading it.
  bool readable() const;

 private:
  int read_fd_, write_fd_;
  std::string buffer_;
};

// Runs requests on the loop's choice, the initial budgets and no timeline, until the other app
// sends a message (left unread): the second app's share of the CPU while the first one calibrates.
void run_background(const Scenario& s, const Workload& w, const AppLink& link);

// Sleeps until the steady clock reads `start_ms` (never more than 10 s).
void wait_until(double start_ms);

}  // namespace adascale::scenario
