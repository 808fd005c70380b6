// --calibrate: measures every branch on this machine through the runtime (adascale_calibrate),
// which writes the device profile, then prints it against the catalog's latencies.
#pragma once

#include <string>

#include "tools/adascale-run/runtime_handle.h"

namespace adascale::run_cli {

struct CalibrateRequest {
  std::string out;  // empty: device-profile.json in the bundle folder
  int runs = 200, rounds = 5;
};

// Throws Failure.
void run_calibration(const CalibrateRequest& request, Runtime& rt);

// --device-profile: "none" makes the loop predict from the catalog, else the profile at `path`
// replaces the bundle's own. Throws Failure naming the culprit.
void use_device_profile(const std::string& path, Runtime& rt);

// "latencies   <where the adaptation loop's latencies come from>"
void print_latency_source(Runtime& rt);

}  // namespace adascale::run_cli
