// Seeded random contention scenarios (adascale-run --generate-scenario SEED): bursts of CPU
// burners, memory balloons and tighter latency budgets (relative to the bundle's own idle
// latencies, relative_budget.h) on an idle background, 20 to 40 s in all. The same seed and
// options give the same file, byte for byte, on every standard library: the draws come from
// std::mt19937, whose output the standard fixes, mapped to ranges by integer arithmetic here
// (std::uniform_int_distribution's mapping is left to each library).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "runtime/adapt/profiler.h"

namespace adascale::scenario {

struct GeneratorOptions {
  int cores = 2;           // burner counts are drawn from 0..cores+1
  int frame_images = 128;  // images per request
  double calibration_s = 0.2;
};

// Bounds of what the generator writes (the tests check them).
constexpr int kGeneratedMinDurationS = 20, kGeneratedMaxDurationS = 40;
constexpr int kGeneratedMinBurstS = 2, kGeneratedMaxBurstS = 6;
constexpr int kGeneratedMaxBalloonMib = 1024;

// A value in [0, n) from `rng`, by rejection: every library draws the same one. n >= 1.
uint32_t uniform_below(std::mt19937& rng, uint32_t n);

// The scenario file for `seed`.
std::string generate_scenario(uint32_t seed, const GeneratorOptions& options);

// Images per request so that one request of the fastest accurate branch takes at least 10 ms
// (requests of tens of ms measure the CPU share, docs/scenarios.md): a power of two from 1 to
// 4096, from the latencies the loop predicts from; 128 when the bundle records none.
int suggested_frame_images(const std::vector<BranchCosts>& costs);

}  // namespace adascale::scenario
