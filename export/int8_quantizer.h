// Int8 branches: calibration, quantization-aware fine-tuning and lowering of an fp32 branch.
//
// The starting point is a lowered fp32 branch (runtime IR, BatchNorm folded). TorchBranch runs
// that graph in LibTorch and can simulate the runtime's int8 arithmetic (docs/int8-arithmetic.md)
// by fake quantization at every point where the int8 branch holds int8 tensors: the input, and
// the output of every conv2d / add / global_avg_pool / fully_connected (relu, concat, flatten and
// max_pool keep their input's quantization). Weights are per-output-channel symmetric. The final
// classifier (a fully_connected producing the logits) stays float32 on dequantized features: it
// is a sliver of the work, and int8 logits would tie and flip top-1 on a rounding.
//
// Int8Quantizer builds an int8 branch from it in three steps:
//   calibrate  observe every quantization point on training images (percentile ranges);
//   finetune   quantization-aware training of the folded weights through the fake quantizers
//              (straight-through gradients), distilling from the fp32 branch. The folded weights
//              are derived tensors private to the int8 branch, so the shared fp32 weights of the
//              other branches never move;
//   lower      int8 conv / fc weights with per-channel scales and int32 biases, out_scale /
//              out_zero_point on every int8 node, a quantize node after the input and a
//              dequantize node before the float classifier.
// With shared weights (the default) there is no fine-tuning: the int8 nodes name the fp32
// branch's own stored tensors and quantize them when the runtime prepares the branch
// (weight_quantize, runtime/graph.h), so an int8 twin adds no weight bytes to a bundle. A twin
// whose calibrated accuracy falls more than shared_max_loss below its fp32 branch is fine-tuned
// and stores its own int8 weights instead.
// The fake-quant forward is the LibTorch model the exporter checks the int8 branch against.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <ostream>
#include <string>

#include "compress/quantization.h"
#include "export/model_lowering.h"
#include "runtime/graph.h"

namespace adascale::exporter {

struct QuantizationOptions {
  int64_t calibration_images = 1024;  // training images observed for the activation ranges
  double percentile = 99.99;          // per tensor range: this central share of the values
  int64_t qat_steps = 200;            // 0: post-training quantization only
  int64_t qat_batch = 64;
  double qat_lr = 0.001;        // SGD with momentum 0.9, cosine to 0, gradients clipped
  double distill_weight = 0.5;  // share of the loss that matches the fp32 branch's logits
  uint64_t seed = 1;
  int threads = 2;  // LibTorch intra-op threads while calibrating and fine-tuning
  // make_int8_twin: quantize the shared fp32 weights at preparation (false: fine-tune a copy)
  bool shared_weights = true;
  double shared_max_loss = 0.3;  // points on the calibration images; beyond: fine-tune a copy
};

class TorchBranch {
 public:
  // `branch` must be float32 (as lower_resnet writes it); its constants are copied
  TorchBranch(const Branch& branch, const ConstantMap& constants);

  // logits [N, classes] for normalized NCHW images; quantized: simulate the int8 branch
  // (needs calibrate() first)
  torch::Tensor forward(const torch::Tensor& images, bool quantized) const;
  // sets the quantization parameters of every int8 point from `images` (no gradient)
  void calibrate(const torch::Tensor& images, double percentile);
  bool calibrated() const { return !act_.empty(); }
  // float weights by constant name, in LibTorch layout (OIHW, [out, in], [out])
  std::map<std::string, torch::Tensor>& weights() { return weights_; }
  const std::map<std::string, torch::Tensor>& weights() const { return weights_; }
  const Branch& graph() const { return branch_; }
  // the fully_connected node answering the logits, kept in float (empty when the branch ends
  // otherwise): its input is dequantized instead
  const std::string& float_head() const { return float_head_; }
  const std::map<std::string, compress::QuantParams>& activations() const { return act_; }

 private:
  torch::Tensor run(const torch::Tensor& images, bool quantized,
                    std::map<std::string, compress::ActivationObserver>* observers) const;

  Branch branch_;
  std::map<std::string, torch::Tensor> weights_;
  std::map<std::string, compress::QuantParams> act_;  // by activation tensor name
  std::string float_head_;
};

struct Int8Report {
  double fp32_accuracy = 0;     // on the calibration images, before quantization
  double ptq_accuracy = 0;      // fake-quant, after calibration only
  double qat_accuracy = 0;      // fake-quant, after fine-tuning (== ptq when qat_steps is 0)
  bool reverted = false;        // fine-tuning lost accuracy: the calibrated weights were kept
  bool shared_weights = false;  // make_int8_twin: the int8 graph quantizes the shared weights
  double seconds = 0;
};

// calibrates and fine-tunes `model` (images: normalized NCHW training images, labels int64);
// logs one line per phase
Int8Report quantize_branch(TorchBranch& model, const torch::Tensor& images,
                           const torch::Tensor& labels, const QuantizationOptions& options,
                           std::ostream& log);

// the int8 graph of a calibrated model, tensors stored through `store` under `name`/...; with
// `shared` (the fp32 graph the model was built from, lowered into `store`) its conv2d /
// fully_connected nodes name shared's float tensors and quantize them at preparation instead
// (the model's weights must still be shared's: no fine-tuning)
Branch lower_int8(const TorchBranch& model, const std::string& name, TensorStore& store,
                  const Branch* shared = nullptr);

// The int8 twin of a (materialized) model of models/ (a spec JSON), the one way eval and export
// build it: the fp32 graph lowered into a scratch store, calibrated (and fine-tuned, without shared
// weights or when they lose too much) by quantize_branch, then its int8 graph added to `store`
// (with shared weights: the fp32 graph's tensors, which `store` already holds when the fp32 twin
// was added first).
struct Int8Twin {
  std::unique_ptr<TorchBranch> model;  // the fake-quant LibTorch model of `graph`
  Branch graph;
  Int8Report report;
};
Int8Twin make_int8_twin(const std::string& spec_json, const compress::StateDict& state,
                        const std::string& name, const torch::Tensor& images,
                        const torch::Tensor& labels, const QuantizationOptions& options,
                        TensorStore& store, std::ostream& log);

}  // namespace adascale::exporter
