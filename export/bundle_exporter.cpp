#include "export/bundle_exporter.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "base/pareto.h"
#include "base/statistics.h"
#include "export/model_lowering.h"
#include "models/backbone.h"
#include "runtime/adapt/profiler.h"
#include "runtime/backend.h"
#include "runtime/branch_costs.h"
#include "runtime/bundle.h"
#include "trainer/checkpoint.h"

namespace adascale::exporter {
namespace {

using Clock = std::chrono::steady_clock;

// CPUs this process may run on (its affinity mask), at most `cap`
int usable_cpus(int cap) {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  return std::max(1, std::min(cpus, cap));
}

std::string read_first_line(const std::string& path, const std::string& prefix = "") {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (prefix.empty() || line.rfind(prefix, 0) == 0)
      return prefix.empty() ? line : line.substr(line.find(':') + 2);
  return "";
}

void check(const Status& s, const std::string& what) {
  if (!s.ok()) throw std::runtime_error(what + ": " + s.message);
}

// bytes moved by one inference: every node's inputs, output and parameters (notes' model M)
size_t memory_access(const Branch& shared, const ConstantMap& shared_constants,
                     const Shape& input_nhwc) {
  DerivedWeights d;  // the weights as the prepared branch reads them
  check(derive_weights(shared, shared_constants, false, &d), "weights of " + shared.name);
  const auto& constants = d.constants;
  std::unordered_map<std::string, TensorInfo> tensors;
  check(infer_shapes(d.branch, input_nhwc, constants, &tensors),
        "shape inference of " + shared.name);
  size_t total = 0;
  for (const auto& n : d.branch.nodes) {
    for (const auto& in : n.inputs) total += tensors.at(in).bytes();
    total += tensors.at(n.output).bytes();
    for (const auto& [slot, name] : n.params) {
      const auto& c = constants.at(name);
      total += static_cast<size_t>(shape_elements(c.shape)) * dtype_size(c.dtype);
    }
  }
  return total;
}

torch::Tensor run_branch(PreparedBranch& p, const torch::Tensor& nchw, int64_t classes) {
  auto nhwc = nchw.permute({0, 2, 3, 1}).contiguous();
  auto out = torch::empty({nchw.size(0), classes});
  check(p.run(nhwc.data_ptr<float>(), nchw.size(0), out.data_ptr<float>(),
              static_cast<size_t>(out.numel())),
        "running branch " + p.name());
  return out;
}

// Batch-1 latency of every branch in the runtime and of its LibTorch eager baseline, in
// interleaved rounds: each round runs every branch in turn, so a change of the host's speed while
// exporting (other load, frequency) spreads over all branches instead of skewing the ones timed
// at that moment; the catalog's relative costs are what the selector compares.
// `prepared`: every branch prepared at batch 1, in the order of result->branches.
// `threaded`: the same branches on a backend with more threads (empty: none), timed on each
// count from 2 to its maximum right after the one-thread runs of the same round.
void time_branches(const std::vector<std::unique_ptr<PreparedBranch>>& prepared,
                   const std::vector<std::unique_ptr<PreparedBranch>>& threaded,
                   const std::vector<std::shared_ptr<trainer::Backbone>>& eager,
                   const torch::Tensor& image, const ExportOptions& o, ExportResult* result,
                   std::ostream& log) {
  const size_t n = prepared.size();
  auto one = image.permute({0, 2, 3, 1}).contiguous();
  std::vector<float> logits;
  for (size_t i = 0; i < n; ++i) {
    logits.resize(static_cast<size_t>(prepared[i]->output_features()));
    for (int k = 0; k < 20; ++k)  // warm-up, and the branch runs at all
      check(prepared[i]->run(one.data_ptr<float>(), 1, logits.data(), logits.size()),
            "running " + prepared[i]->name());
  }
  const int saved_threads = torch::get_num_threads();
  torch::set_num_threads(o.threads);  // as many intra-op threads as the runtime uses
  for (auto& model : eager)
    for (int k = 0; k < 20; ++k) model->forward(image);
  const int64_t rounds = std::max<int64_t>(1, std::min(o.latency_rounds, o.latency_runs));
  std::vector<std::vector<double>> runtime_ms(n), eager_ms(n);
  const int most = threaded.empty() ? 1 : threaded[0]->max_threads();
  // [branch][threads - 2]
  std::vector<std::vector<std::vector<double>>> threaded_ms(
      n, std::vector<std::vector<double>>(static_cast<size_t>(std::max(0, most - 1))));
  auto timed = [&](PreparedBranch& p, std::vector<double>* ms) {
    const auto s = Clock::now();
    p.run(one.data_ptr<float>(), 1, logits.data(), logits.size());
    ms->push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
  };
  log << "timing " << n << " branches: " << o.latency_runs << " batch-1 runs each in " << rounds
      << " interleaved round" << (rounds > 1 ? "s" : "") << std::endl;
  for (int64_t round = 0; round < rounds; ++round) {
    // a line per round: minutes pass here on a large bundle (plain lines, fit for logs too)
    log << "  round " << round + 1 << "/" << rounds << std::endl;
    // runs of this round: the total split evenly, the remainder in the first rounds
    const int64_t runs = o.latency_runs / rounds + (round < o.latency_runs % rounds ? 1 : 0);
    for (size_t i = 0; i < n; ++i) {
      logits.resize(static_cast<size_t>(prepared[i]->output_features()));
      for (int64_t k = 0; k < runs; ++k) timed(*prepared[i], &runtime_ms[i]);
      for (int t = 2; t <= most; ++t) {
        check(threaded[i]->set_threads(t), "threads of " + threaded[i]->name());
        for (int k = 0; k < 5; ++k)  // the pool's threads wake up
          threaded[i]->run(one.data_ptr<float>(), 1, logits.data(), logits.size());
        for (int64_t k = 0; k < runs; ++k)
          timed(*threaded[i], &threaded_ms[i][static_cast<size_t>(t - 2)]);
      }
      for (int64_t k = 0; k < runs; ++k) {
        const auto s = Clock::now();
        eager[i]->forward(image);
        eager_ms[i].push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
      }
    }
  }
  torch::set_num_threads(saved_threads);
  log << "batch-1 latency, " << o.latency_runs << " runs per branch in " << rounds
      << " interleaved round" << (rounds > 1 ? "s" : "") << "\n";
  for (size_t i = 0; i < n; ++i) {
    BranchReport& r = result->branches[i];
    r.latency_median_ms = base::percentile(runtime_ms[i], 0.5);
    r.latency_p90_ms = base::percentile(runtime_ms[i], 0.9);
    r.libtorch_latency_median_ms = base::percentile(eager_ms[i], 0.5);
    for (int t = 2; t <= most; ++t) {
      const std::vector<double>& ms = threaded_ms[i][static_cast<size_t>(t - 2)];
      r.latency_by_threads.push_back({t, base::percentile(ms, 0.5), base::percentile(ms, 0.9)});
    }
    log << "  " << std::left << std::setw(28) << r.name << std::right << std::fixed
        << std::setprecision(2) << std::setw(8) << r.macs / 1e6 << " M MACs" << std::setprecision(3)
        << std::setw(8) << r.latency_median_ms << " ms (LibTorch eager " << std::setw(6)
        << r.libtorch_latency_median_ms << " ms)";
    for (const ThreadLatency& t : r.latency_by_threads)
      log << std::setprecision(3) << " " << t.threads << " threads " << t.median_ms << " ms";
    log << std::setprecision(2) << std::setw(8) << 100 * r.accuracy << "%\n";
  }
}

}  // namespace

std::string describe_device(int threads) {
  std::ostringstream o;
  o << read_first_line("/proc/cpuinfo", "model name") << ", " << threads << " thread"
    << (threads > 1 ? "s" : "");
  const auto governor = read_first_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
  const auto freq = read_first_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq");
  if (!governor.empty()) o << ", governor " << governor;
  if (!freq.empty()) o << ", " << std::stoll(freq) / 1000 << " MHz";
  // int8 latencies depend on which kernel ran the convolutions
  o << ", int8 conv on " << int8_conv_kernel();
  return o.str();
}

ExportResult export_bundle(const std::vector<ExportSource>& sources, const torch::Tensor& images,
                           const torch::Tensor& labels, const std::string& out_path,
                           const ExportOptions& o, std::ostream& log) {
  if (sources.empty()) throw std::invalid_argument("export: no branches to export");
  torch::NoGradGuard no_grad;
  const int64_t C = images.size(1), H = images.size(2), W = images.size(3);
  BundleWriter writer;
  writer.set_model_name(o.model_name);
  writer.set_input({1, C, H, W}, o.mean, o.std);
  writer.set_classes(o.class_names);
  TensorStore store(writer);

  ExportResult result;
  std::vector<Branch> branches;
  auto xnnpack = make_xnnpack_backend(o.threads);
  auto reference = make_reference_backend();
  const std::string device = describe_device(o.threads);
  const int64_t parity_n = std::min(o.parity_images, images.size(0));
  // batch-1 branches and their LibTorch baselines, timed together after the loop
  std::vector<std::unique_ptr<PreparedBranch>> singles;
  std::vector<std::shared_ptr<trainer::Backbone>> eager_models;

  std::set<std::string> fp32_sources;
  for (const auto& src : sources)
    if (!src.int8) fp32_sources.insert(src.name);
  for (const auto& src : sources) {
    for (const auto& b : branches)
      if (b.name == src.name) throw std::invalid_argument("export: two branches named " + src.name);
    auto model = build_model(src.spec, src.state, src.name);
    BranchReport r;
    r.name = src.name;
    Branch branch;
    std::unique_ptr<TorchBranch> fake_quant;  // int8: the LibTorch model of the int8 graph
    if (src.int8) {
      if (!o.calibration_images.defined() || o.calibration_images.size(0) == 0)
        throw std::invalid_argument("export: int8 branch " + src.name +
                                    " needs calibration images");
      // shared int8 weights only next to the fp32 branch that stores them
      const std::string suffix = ">int8";
      const bool sibling =
          src.name.size() > suffix.size() &&
          src.name.compare(src.name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          fp32_sources.count(src.name.substr(0, src.name.size() - suffix.size()));
      QuantizationOptions q = o.quantization;
      if (q.shared_weights && !sibling) {
        log << "    int8 " << src.name << ": no fp32 branch in the bundle to share weights with\n";
        q.shared_weights = false;
      }
      auto twin = make_int8_twin(src.spec, src.state, src.name, o.calibration_images,
                                 o.calibration_labels, q, store, log);
      fake_quant = std::move(twin.model);
      r.precision = "int8";
      r.int8 = twin.report;
      branch = std::move(twin.graph);
    } else {
      branch = lower_model(src.spec, src.state, src.name, store);
    }
    auto libtorch_forward = [&](const torch::Tensor& x) {
      return fake_quant ? fake_quant->forward(x, true) : model->forward(x);
    };
    const auto cost = trainer::measure_cost(*model, C, H, W);
    r.macs = cost.macs;
    r.params = cost.params;
    r.memory_access_bytes = memory_access(branch, writer.constants(), {1, H, W, C});

    // parity against LibTorch, both runtime backends
    std::unique_ptr<PreparedBranch> prepared, ref_prepared;
    check(xnnpack->prepare(branch, writer.constants(), {parity_n, H, W, C}, &prepared),
          "preparing " + src.name);
    check(reference->prepare(branch, writer.constants(), {parity_n, H, W, C}, &ref_prepared),
          "preparing " + src.name + " (reference)");
    auto x = images.slice(0, 0, parity_n);
    auto expected = libtorch_forward(x);
    auto got = run_branch(*prepared, x, expected.size(1));
    auto got_ref = run_branch(*ref_prepared, x, expected.size(1));
    auto agreement = [&](const torch::Tensor& logits) {
      return logits.argmax(1).eq(expected.argmax(1)).to(torch::kFloat64).mean().item<double>();
    };
    r.max_logit_diff = (got - expected).abs().max().item<double>();
    r.max_logit_diff_reference = (got_ref - expected).abs().max().item<double>();
    r.top1_agreement = agreement(got);
    r.top1_agreement_reference = agreement(got_ref);
    // fp32: the same function up to float rounding; int8: the same integer arithmetic up to one
    // quantization step per node, which may flip a near tie
    const bool parity_ok =
        src.int8
            ? r.top1_agreement >= o.int8_agreement && r.top1_agreement_reference >= o.int8_agreement
            : r.max_logit_diff <= o.parity_tolerance &&
                  r.max_logit_diff_reference <= o.parity_tolerance && r.top1_agreement == 1.0 &&
                  r.top1_agreement_reference == 1.0;
    if (!parity_ok)
      throw std::runtime_error(
          "export: branch " + src.name + " fails parity with " + (src.int8 ? "fake-quant " : "") +
          "LibTorch (max |logit difference| " + std::to_string(r.max_logit_diff) + " xnnpack, " +
          std::to_string(r.max_logit_diff_reference) + " reference; top-1 agreement " +
          std::to_string(100 * r.top1_agreement) + "% xnnpack, " +
          std::to_string(100 * r.top1_agreement_reference) + "% reference); no bundle written");

    // held-out accuracy, runtime and LibTorch
    int64_t correct = 0, correct_torch = 0;
    for (int64_t b = 0; b < images.size(0); b += parity_n) {
      auto xb = images.slice(0, b, std::min(images.size(0), b + parity_n));
      auto yb = labels.slice(0, b, b + xb.size(0));
      correct += run_branch(*prepared, xb, expected.size(1)).argmax(1).eq(yb).sum().item<int64_t>();
      correct_torch += libtorch_forward(xb).argmax(1).eq(yb).sum().item<int64_t>();
    }
    r.accuracy = static_cast<double>(correct) / images.size(0);
    r.libtorch_accuracy = static_cast<double>(correct_torch) / images.size(0);

    // cold preparation at batch 1; the timed runs follow for all branches together, below (the
    // prepared branch keeps its constants: later branches only add tensors to the writer)
    const auto t0 = Clock::now();
    std::unique_ptr<PreparedBranch> single;
    check(xnnpack->prepare(branch, writer.constants(), {1, H, W, C}, &single),
          "preparing " + src.name);
    r.prepare_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    r.weight_bytes = single->weight_bytes();
    r.arena_bytes = single->arena_bytes();
    r.energy_mj = modelled_energy_mj(DeviceProfile{}, false, static_cast<double>(r.macs),
                                     static_cast<double>(r.memory_access_bytes),
                                     DeviceProfile{}.default_cache_rate);
    result.separate_bytes += r.weight_bytes;
    result.largest_branch_bytes = std::max(result.largest_branch_bytes, r.weight_bytes);
    log << "  [" << result.branches.size() + 1 << "/" << sources.size() << "] checked " << std::left
        << std::setw(28) << r.name << std::right << std::fixed << std::setprecision(2)
        << std::setw(8) << 100 * r.accuracy << "%  parity " << std::scientific
        << std::setprecision(1) << r.max_logit_diff << std::fixed;
    if (src.int8)
      log << " (top-1 agreement " << std::setprecision(1) << 100 * r.top1_agreement << "%)";
    log << std::endl;  // flushed: each line marks progress
    eager_models.push_back(model);
    singles.push_back(std::move(single));
    result.branches.push_back(r);
    branches.push_back(branch);
  }
  // the same branches on more threads (per-node tuned: backend.h), when profiling on one
  std::vector<std::unique_ptr<PreparedBranch>> threaded;
  const int latency_threads = o.threads != 1          ? 1
                              : o.latency_threads > 0 ? o.latency_threads
                                                      : usable_cpus(4);
  if (latency_threads > 1) {
    auto pools = make_xnnpack_backend(latency_threads);
    for (const Branch& branch : branches) {
      std::unique_ptr<PreparedBranch> p;
      check(pools->prepare(branch, writer.constants(), {1, H, W, C}, &p),
            "preparing " + branch.name + " on " + std::to_string(latency_threads) + " threads");
      threaded.push_back(std::move(p));
    }
  }
  time_branches(singles, threaded, eager_models, images.slice(0, 0, 1), o, &result, log);

  // Pareto front over (measured latency, accuracy)
  std::vector<double> latency, accuracy;
  for (const auto& r : result.branches) {
    latency.push_back(r.latency_median_ms);
    accuracy.push_back(r.accuracy);
  }
  for (const size_t i : base::pareto_front(latency, accuracy)) result.branches[i].pareto = true;
  for (size_t i = 0; i < branches.size(); ++i) {
    const auto& r = result.branches[i];
    BranchCosts costs;
    costs.macs = static_cast<double>(r.macs);
    costs.params = static_cast<double>(r.params);
    costs.weight_bytes = static_cast<double>(r.weight_bytes);
    costs.activation_bytes = static_cast<double>(r.arena_bytes);
    costs.memory_bytes = static_cast<double>(r.weight_bytes + r.arena_bytes);
    costs.memory_access_bytes = static_cast<double>(r.memory_access_bytes);
    costs.latency_median_ms = r.latency_median_ms;
    costs.latency_p90_ms = r.latency_p90_ms;
    costs.latency_by_threads = r.latency_by_threads;
    costs.latency_batch = 1;
    costs.latency_device = device;
    costs.prepare_ms = r.prepare_ms;
    costs.libtorch_eager_latency_ms = r.libtorch_latency_median_ms;
    costs.energy_mj = r.energy_mj;
    costs.energy_model = "e_mac*MACs + M*(r*e_cache + (1-r)*e_dram), r=0.5, docs/device-profile.md";
    costs.int8 = r.precision == "int8";
    costs.accuracy = r.accuracy;  // a fraction, as BranchCosts states
    costs.accuracy_images = static_cast<double>(images.size(0));
    costs.parity_max_logit_diff = r.max_logit_diff;
    costs.parity_top1_agreement = r.top1_agreement;
    costs.pareto = r.pareto;
    branches[i].costs_json = nlohmann::json(costs).dump();
    check(writer.add_branch(branches[i]), "adding branch " + branches[i].name);
  }
  check(writer.write(out_path), "writing " + out_path);
  for (const auto& entry : std::filesystem::directory_iterator(out_path))
    result.bundle_bytes += std::filesystem::file_size(entry.path());
  result.weights_file_bytes =
      std::filesystem::file_size(std::filesystem::path(out_path) / "weights.bin");
  result.shared_tensors = store.shared_hits();
  result.sliced_tensors = store.slice_hits();
  return result;
}

}  // namespace adascale::exporter
