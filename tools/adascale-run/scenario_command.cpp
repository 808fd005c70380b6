#include "tools/adascale-run/scenario_command.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "base/durable_file.h"
#include "runtime/adapt/context_monitor.h"
#include "runtime/latency_source.h"
#include "tools/adascale-run/calibrate_command.h"
#include "tools/adascale-run/failure.h"
#include "tools/adascale-run/idx_input.h"
#include "tools/adascale-run/second_app.h"
#include "tools/scenario/app_link.h"
#include "tools/scenario/relative_budget.h"
#include "tools/scenario/scenario_generator.h"
#include "tools/scenario/scenario_run.h"

namespace adascale::run_cli {
namespace {

namespace sc = adascale::scenario;

// where this host's energy numbers come from: a power reading (powercap's energy counter over
// two samples, or a discharging battery) scales the loop's cost model; without one, energy is
// the model's alone
void print_energy_source() {
  ContextMonitor monitor;
  monitor.sample();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const ContextSample s = monitor.sample();
  if (const auto w = s.measured_power_w())
    std::printf(
        "energy      this host reads %.2f W (%s): the loop scales the cost model by it;"
        " the replay's mJ/request stay modelled\n",
        *w, s.powercap_power_w ? "powercap" : "battery");
  else
    std::printf(
        "energy      modelled: this host reads no power (no powercap energy counter, no"
        " discharging battery); mJ/request is the device profile's cost model\n");
}

// The replay's view of the bundle and the images; `ds` must outlive it.
sc::Workload make_workload(Runtime& rt, const Dataset& ds) {
  sc::Workload w;
  w.runtime = rt.get();
  // the costs the handle's own loop would predict from: with the device profile's latencies
  // when it uses one
  w.costs = loop_branch_costs(rt.get());
  w.pixels = ds.pixels.data();
  w.labels = ds.labels.data();
  w.count = ds.count;
  w.image_floats = rt.input.floats();
  w.classes = rt.classes;
  w.threads = adascale_max_threads(rt.get());
  // one thread where the loop's own branches run on one (its latencies are one thread's)
  const std::vector<LoopChoice> choices = loop_choices(w.costs, w.threads);
  w.fixed_threads = choices.empty() ? 0 : choices[0].threads;
  return w;
}

// The second app's bundle, with the images and budgets it will get, checked here first: a
// mistake is then one line from this process, before anything runs or is printed.
void check_second_app(const ScenarioRequest& request, const sc::Scenario& scenario) {
  try {
    Runtime second(request.second_bundle, request.backend_kind, request.threads);
    if (second.classes == 0)
      throw Failure("the catalog names no classes, so labels cannot be scored");
    const Dataset ds =
        load_idx(request.idx_images, request.idx_labels, second.input, request.limit);
    check_labels(ds, second.classes);
    sc::Scenario copy = scenario;
    sc::resolve_relative_budgets(&copy, loop_branch_costs(second.get()));
  } catch (const sc::ScenarioError& e) {
    throw Failure("--second-bundle: " + std::string(e.what()));
  } catch (const Failure& e) {
    throw Failure("--second-bundle: " + std::string(e.what()));
  }
}

}  // namespace

int run_scenario(const ScenarioRequest& request, Runtime& rt) {
  sc::Scenario scenario;
  sc::RunOptions options;
  try {
    scenario = sc::load_scenario(request.scenario_path);
    options.policies = sc::parse_policies(request.policies);
  } catch (const sc::ScenarioError& e) {
    throw Failure(e.what());
  }
  std::unique_ptr<sc::AppLink> follower_link;
  if (!request.app_link.empty()) {
    follower_link = app_link_from(request.app_link);
    options.link = follower_link.get();
    options.follower = true;
    scenario.name += "-app2";  // its traces and summary next to the first app's
  }
  options.trace_dir = request.trace_dir;
  if (!options.trace_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.trace_dir, ec);
    if (ec) throw Failure("cannot create '" + options.trace_dir + "': " + ec.message());
  }
  const Dataset ds = load_idx(request.idx_images, request.idx_labels, rt.input, request.limit);
  if (rt.classes == 0) throw Failure("the catalog names no classes, so labels cannot be scored");
  check_labels(ds, rt.classes);
  const sc::Workload w = make_workload(rt, ds);
  if (!request.second_bundle.empty()) check_second_app(request, scenario);
  std::vector<std::string> resolved;
  try {
    resolved = sc::resolve_relative_budgets(&scenario, w.costs);
  } catch (const sc::ScenarioError& e) {
    throw Failure(e.what());
  }
  // once the scenario and the images are known good, so that a mistake stays a one-line error
  print_latency_source(rt);
  for (const std::string& line : resolved) std::printf("%s\n", line.c_str());
  std::fflush(stdout);  // before a second app is forked: nothing buffered twice
  sc::install_interrupt_handlers();
  std::unique_ptr<SecondApp> second;
  if (!request.second_bundle.empty()) {
    std::vector<std::string> args = {"--bundle",   request.second_bundle,
                                     "--scenario", request.scenario_path,
                                     "--idx",      request.idx_images,
                                     "--labels",   request.idx_labels,
                                     "--policy",   request.policies,
                                     "--backend",  request.backend,
                                     "--threads",  std::to_string(request.threads)};
    if (!request.trace_dir.empty()) args.insert(args.end(), {"--trace-out", request.trace_dir});
    if (request.limit > 0) args.insert(args.end(), {"--limit", std::to_string(request.limit)});
    if (request.no_device_profile) args.insert(args.end(), {"--device-profile", "none"});
    second = std::make_unique<SecondApp>(args);
    options.link = &second->link();
  }
  std::vector<sc::PolicySummary> summaries;
  std::string write_error;  // a trace that could not be written: reported after the summary
  try {
    summaries = sc::run_scenario(scenario, w, options, &write_error);
  } catch (const sc::ScenarioError& e) {
    if (sc::interrupted()) {
      std::fprintf(stderr, "adascale-run: interrupted\n");
      return 130;
    }
    throw Failure(e.what());
  }
  std::fputs(sc::format_summary(scenario, summaries).c_str(), stdout);
  print_energy_source();
  for (const auto& s : summaries)
    if (!s.trace_csv.empty())
      std::printf("trace %-10s %s %s\n", sc::policy_name(s.policy), s.trace_csv.c_str(),
                  s.trace_svg.c_str());
  if (second) {
    const SecondApp::Outcome outcome = second->finish();
    std::printf("\nsecond app (%s):\n%s", request.second_bundle.c_str(), outcome.output.c_str());
    if (!outcome.failure.empty()) throw Failure(outcome.failure);
  }
  if (!write_error.empty()) throw Failure(write_error);
  return 0;
}

void generate_scenario(const GenerateRequest& request, Runtime& rt) {
  sc::GeneratorOptions options;
  options.cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.frame_images = sc::suggested_frame_images(loop_branch_costs(rt.get()));
  const std::string text = sc::generate_scenario(request.seed, options);
  if (request.out.empty()) {
    std::fputs(text.c_str(), stdout);
    return;
  }
  std::string error;
  if (!base::write_file_atomic(request.out, text.data(), text.size(), &error))
    throw Failure("--out: " + error);
  std::printf("scenario %s (seed %u, %d cores, requests of %d images)\n", request.out.c_str(),
              request.seed, options.cores, options.frame_images);
}

}  // namespace adascale::run_cli
