// BundleExporter: lowers trained (possibly compressed) ResNet and MobileNetV2 checkpoints into one
// bundle, one branch per checkpoint, and measures every branch by running it in the runtime on this
// machine: latency (median, p90, with the device state), activation arena, memory access, modelled
// energy, held-out accuracy, and parity against LibTorch. A bundle whose parity check fails is not
// written. An int8 source is calibrated and fine-tuned (export/int8_quantizer.h) on training images
// first; its parity is checked against the fake-quant LibTorch model of the same graph.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "compress/channel_pruning.h"
#include "export/int8_quantizer.h"
#include "models/resnet.h"
#include "runtime/branch_costs.h"

namespace adascale::exporter {

struct ExportSource {
  std::string name;  // branch name
  std::string spec;  // the model's spec JSON: a (compressed) resnet or mobilenetv2
  compress::StateDict state;
  // quantize the branch (int8 weights and activations); with shared int8 weights it names the
  // tensors of the fp32 source called `name` without ">int8", or stores its own where there is none
  bool int8 = false;
};

struct ExportOptions {
  int threads = 1;                 // runtime threads while profiling
  int64_t parity_images = 200;     // images compared against LibTorch
  double parity_tolerance = 1e-3;  // max |logit difference|
  int64_t latency_runs = 200;      // timed batch-1 runs per branch (after warm-up)
  int64_t latency_rounds = 5;      // ... split into rounds that visit every branch in turn
  // With threads 1: also time every branch on 2 to this many threads (latency_by_threads in the
  // catalog), in the same rounds; 0: up to the CPUs this process may use, at most 4; 1: none.
  int latency_threads = 0;
  std::string model_name = "model";
  std::vector<std::string> class_names;
  std::vector<float> mean, std;  // input normalization, per channel
  // int8 sources: calibration / fine-tuning images (normalized NCHW, training split) and labels
  torch::Tensor calibration_images, calibration_labels;
  QuantizationOptions quantization;
  double int8_agreement = 0.99;  // min top-1 agreement of the runtime with fake-quant LibTorch
};

struct BranchReport {
  std::string name;
  std::string precision = "fp32";
  Int8Report int8;  // int8 branches: calibration and fine-tuning
  int64_t macs = 0, params = 0;
  size_t weight_bytes = 0, arena_bytes = 0, memory_access_bytes = 0;
  double latency_median_ms = 0, latency_p90_ms = 0, prepare_ms = 0;
  double libtorch_latency_median_ms = 0;  // the same branch in LibTorch eager, timed alongside
  std::vector<ThreadLatency> latency_by_threads;  // 2 and more threads, timed alongside
  double energy_mj = 0;
  double accuracy = 0;                  // runtime, on the held-out images
  double libtorch_accuracy = 0;         // LibTorch eval mode (int8: fake-quant), same images
  double max_logit_diff = 0;            // runtime (XNNPACK) vs LibTorch
  double max_logit_diff_reference = 0;  // runtime (reference backend) vs LibTorch
  double top1_agreement = 0;            // XNNPACK vs LibTorch
  double top1_agreement_reference = 0;
  bool pareto = false;
};

struct ExportResult {
  std::vector<BranchReport> branches;
  size_t bundle_bytes = 0;        // weights.bin + catalog.json
  size_t weights_file_bytes = 0;  // weights.bin alone (aligned, shared tensors stored once)
  size_t separate_bytes = 0;      // the branches stored as separate models
  size_t largest_branch_bytes = 0;
  size_t shared_tensors = 0;  // tensors referenced whole by more than one branch
  size_t sliced_tensors = 0;  // weights referenced as the leading slice of a stored one
};

// images: normalized NCHW held-out images with labels; throws on parity failure or bad input
ExportResult export_bundle(const std::vector<ExportSource>& sources, const torch::Tensor& images,
                           const torch::Tensor& labels, const std::string& out_path,
                           const ExportOptions& options, std::ostream& log);

std::string describe_device(int threads);

}  // namespace adascale::exporter
