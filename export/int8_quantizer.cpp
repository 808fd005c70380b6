#include "export/int8_quantizer.h"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <set>
#include <stdexcept>

namespace adascale::exporter {
namespace {

using compress::ActivationObserver;
using compress::QuantParams;

// ops whose int8 output carries its own scale and zero point (the others keep their input's)
const std::set<std::string> kRequantizing = {"conv2d", "add", "global_avg_pool", "fully_connected"};
const std::set<std::string> kPassThrough = {"relu", "relu6", "max_pool2d", "flatten", "concat"};

torch::Tensor activate(const torch::Tensor& x, const Node& n) {
  const auto act = n.attrs.get_string("activation", "none");
  if (act == "relu") return torch::relu(x);
  if (act == "relu6") return torch::clamp(x, 0.0, 6.0);
  if (act != "none") throw std::invalid_argument("int8: node " + n.output + ": activation " + act);
  return x;
}

// NCHW -> [N, features] in the runtime's NHWC order
torch::Tensor flatten_nhwc(const torch::Tensor& x) {
  if (x.dim() == 4) return x.permute({0, 2, 3, 1}).reshape({x.size(0), -1});
  return x.reshape({x.size(0), -1});
}

const torch::Tensor& weight_of(const std::map<std::string, torch::Tensor>& w, const Node& n,
                               const std::string& slot) {
  auto p = n.params.find(slot);
  if (p == n.params.end())
    throw std::invalid_argument("int8: node " + n.output + " has no " + slot);
  return w.at(p->second);
}

double accuracy(const TorchBranch& m, const torch::Tensor& x, const torch::Tensor& y, bool q) {
  torch::NoGradGuard no_grad;
  int64_t correct = 0;
  for (int64_t i = 0; i < x.size(0); i += 256) {
    auto xb = x.slice(0, i, std::min(x.size(0), i + 256));
    correct += m.forward(xb, q).argmax(1).eq(y.slice(0, i, i + xb.size(0))).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(x.size(0));
}

}  // namespace

TorchBranch::TorchBranch(const Branch& shared, const ConstantMap& shared_constants) {
  // shared weights (slices, BatchNorm scales applied at preparation) become plain tensors first
  DerivedWeights derived;
  const Status s = derive_weights(shared, shared_constants, /*materialize=*/true, &derived);
  if (!s.ok()) throw std::invalid_argument("int8: " + s.message);
  branch_ = derived.branch;
  for (const auto& n : branch_.nodes)
    if (n.output == branch_.output && n.op == "fully_connected") float_head_ = n.output;
  const ConstantMap& constants = derived.constants;
  for (const auto& n : branch_.nodes)
    for (const auto& [slot, name] : n.params) {
      if (weights_.count(name)) continue;
      auto it = constants.find(name);
      if (it == constants.end())
        throw std::invalid_argument("int8: node " + n.output + " names missing tensor " + name);
      const ConstTensor& c = it->second;
      if (c.dtype != DType::kF32)
        throw std::invalid_argument("int8: tensor " + name + " is not float32; quantize from fp32");
      auto t = torch::from_blob(const_cast<void*>(c.data), c.shape, torch::kFloat32).clone();
      // conv weights are OHWI in the runtime, OIHW in LibTorch
      if (n.op == "conv2d" && slot == "weight") t = t.permute({0, 3, 1, 2}).contiguous();
      weights_[name] = t;
    }
}

torch::Tensor TorchBranch::forward(const torch::Tensor& images, bool quantized) const {
  if (quantized && act_.empty())
    throw std::logic_error("int8: forward with quantization before calibrate()");
  return run(images, quantized, nullptr);
}

torch::Tensor TorchBranch::run(const torch::Tensor& images, bool quantized,
                               std::map<std::string, ActivationObserver>* observers) const {
  std::map<std::string, torch::Tensor> env;
  auto point = [&](const std::string& name, torch::Tensor t) {
    if (observers) observers->at(name).observe(t);
    if (quantized) t = compress::fake_quantize_activation(t, act_.at(name));
    return t;
  };
  auto w_of = [&](const Node& n, const std::string& slot) {
    const auto& w = weight_of(weights_, n, slot);
    return quantized && slot == "weight" && n.output != float_head_
               ? compress::fake_quantize_weight(w)
               : w;
  };
  // the int32 bias the int8 node adds, at scale input_scale x weight_scale[o]
  auto bias_of = [&](const Node& n) {
    if (!n.params.count("bias")) return torch::Tensor();
    const auto& b = weight_of(weights_, n, "bias");
    if (!quantized || n.output == float_head_) return b;
    const auto qw = compress::quantize_weight_per_channel(weight_of(weights_, n, "weight"));
    const auto& in_params = act_.at(n.inputs.at(0));
    // the exported int32 bias itself (saturating), back on the float grid
    const auto q = compress::quantize_bias(b.detach(), in_params, qw).to(torch::kFloat32);
    return b + (q * (qw.scale * in_params.scale) - b.detach()).detach();
  };
  auto in = [&](const Node& n, size_t i) -> const torch::Tensor& {
    auto it = env.find(n.inputs.at(i));
    if (it == env.end())
      throw std::invalid_argument("int8: node " + n.output + " reads undefined " + n.inputs[i]);
    return it->second;
  };
  env[branch_.input] = point(branch_.input, images);
  for (const auto& n : branch_.nodes) {
    torch::Tensor y;
    if (n.op == "conv2d") {
      auto x = in(n, 0);
      const auto stride = n.attrs.get_ints("stride", {1, 1});
      const auto pad = n.attrs.get_ints("pad", {0, 0, 0, 0});  // top, left, bottom, right
      std::vector<int64_t> padding = {pad[0], pad[1]};
      if (pad[0] != pad[2] || pad[1] != pad[3]) {
        x = torch::constant_pad_nd(x, {pad[1], pad[3], pad[0], pad[2]}, 0.0);
        padding = {0, 0};
      }
      const auto bias = bias_of(n);
      y = torch::conv2d(x, w_of(n, "weight"), bias, stride, padding, {1, 1},
                        n.attrs.get_int("groups", 1));
      y = point(n.output, activate(y, n));
    } else if (n.op == "add") {
      y = point(n.output, activate(in(n, 0) + in(n, 1), n));
    } else if (n.op == "global_avg_pool") {
      y = point(n.output, in(n, 0).mean({2, 3}, true));
    } else if (n.op == "fully_connected") {
      const auto bias = bias_of(n);
      y = activate(torch::linear(flatten_nhwc(in(n, 0)), w_of(n, "weight"), bias), n);
      if (n.output != float_head_) y = point(n.output, y);
    } else if (n.op == "relu") {
      y = torch::relu(in(n, 0));
    } else if (n.op == "relu6") {
      y = torch::clamp(in(n, 0), 0.0, 6.0);
    } else if (n.op == "flatten") {
      y = flatten_nhwc(in(n, 0));
    } else if (n.op == "concat") {
      std::vector<torch::Tensor> parts;
      for (size_t i = 0; i < n.inputs.size(); ++i) parts.push_back(in(n, i));
      y = torch::cat(parts, parts.front().dim() == 4 ? 1 : -1);  // the runtime's channel axis
    } else if (n.op == "max_pool2d") {
      const auto pad = n.attrs.get_ints("pad", {0, 0, 0, 0});
      if (pad[0] != pad[2] || pad[1] != pad[3])
        throw std::invalid_argument("int8: max_pool2d " + n.output + ": asymmetric padding");
      y = torch::max_pool2d(in(n, 0), n.attrs.get_ints("pool", {}),
                            n.attrs.get_ints("stride", {1, 1}), {pad[0], pad[1]});
    } else {
      throw std::invalid_argument("int8: op '" + n.op + "' (node " + n.output +
                                  ") has no int8 lowering");
    }
    env[n.output] = y;
  }
  return env.at(branch_.output);
}

void TorchBranch::calibrate(const torch::Tensor& images, double percentile) {
  torch::NoGradGuard no_grad;
  std::map<std::string, ActivationObserver> observers;
  observers.emplace(branch_.input, ActivationObserver(percentile));
  for (const auto& n : branch_.nodes)
    if (kRequantizing.count(n.op) && n.output != float_head_)
      observers.emplace(n.output, ActivationObserver(percentile));
  for (int64_t i = 0; i < images.size(0); i += 256)
    run(images.slice(0, i, std::min(images.size(0), i + 256)), false, &observers);
  // concatenated tensors share one scale and zero point: their producers get the union range
  std::map<std::string, std::pair<double, double>> range;
  for (const auto& [name, o] : observers) range[name] = {o.lo(), o.hi()};
  for (const auto& n : branch_.nodes) {
    if (n.op != "concat") continue;
    double lo = 0, hi = 0;
    for (const auto& i : n.inputs) {
      if (!range.count(i))
        throw std::invalid_argument("int8: concat " + n.output + " input " + i +
                                    " is not requantized by its producer");
      lo = std::min(lo, range[i].first);
      hi = std::max(hi, range[i].second);
    }
    for (const auto& i : n.inputs) range[i] = {lo, hi};
  }
  act_.clear();
  for (const auto& [name, r] : range) act_[name] = compress::activation_params(r.first, r.second);
  for (const auto& n : branch_.nodes)
    if (kPassThrough.count(n.op)) act_[n.output] = act_.at(n.inputs.at(0));
}

Int8Report quantize_branch(TorchBranch& model, const torch::Tensor& images,
                           const torch::Tensor& labels, const QuantizationOptions& o,
                           std::ostream& log) {
  if (images.size(0) < 1) throw std::invalid_argument("int8: no calibration images");
  if (o.qat_steps < 0 || o.qat_batch < 1 || !(o.qat_lr > 0) || o.distill_weight < 0 ||
      o.distill_weight > 1)
    throw std::invalid_argument("int8: bad quantization options");
  const auto t0 = std::chrono::steady_clock::now();
  // intra-op threads for this work only, restored on every exit path
  struct ThreadScope {
    int saved = torch::get_num_threads();
    explicit ThreadScope(int n) { torch::set_num_threads(std::max(1, n)); }
    ~ThreadScope() { torch::set_num_threads(saved); }
  } threads(o.threads);
  const int64_t n = std::min<int64_t>(images.size(0), o.calibration_images);
  auto x = images.slice(0, 0, n), y = labels.slice(0, 0, n);
  Int8Report r;
  r.fp32_accuracy = accuracy(model, x, y, false);
  model.calibrate(x, o.percentile);
  r.ptq_accuracy = r.qat_accuracy = accuracy(model, x, y, true);
  if (o.qat_steps > 0) {
    torch::Tensor teacher;
    {
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> parts;
      for (int64_t i = 0; i < n; i += 256)
        parts.push_back(model.forward(x.slice(0, i, std::min(n, i + 256)), false));
      teacher = torch::softmax(torch::cat(parts), 1);
    }
    torch::AutoGradMode grad(true);
    std::map<std::string, torch::Tensor> calibrated_weights;
    for (const auto& [name, w] : model.weights()) calibrated_weights[name] = w.detach().clone();
    std::vector<torch::Tensor> params;
    for (auto& [name, w] : model.weights()) params.push_back(w.requires_grad_(true));
    torch::optim::SGD opt(params, torch::optim::SGDOptions(o.qat_lr).momentum(0.9));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
    for (int64_t step = 0; step < o.qat_steps; ++step) {
      const double lr = 0.5 * o.qat_lr * (1 + std::cos(M_PI * step / o.qat_steps));
      for (auto& g : opt.param_groups()) g.options().set_lr(lr);
      auto idx = torch::randint(n, {std::min(o.qat_batch, n)}, gen, torch::kLong);
      auto logits = model.forward(x.index_select(0, idx), true);
      auto logp = torch::log_softmax(logits, 1);
      auto loss = (1 - o.distill_weight) * torch::nll_loss(logp, y.index_select(0, idx)) -
                  o.distill_weight * (teacher.index_select(0, idx) * logp).sum(1).mean();
      opt.zero_grad();
      loss.backward();
      // folded depthwise weights can be large; a clipped step keeps one bad batch from
      // throwing the branch off
      torch::nn::utils::clip_grad_norm_(params, 1.0);
      opt.step();
    }
    for (auto& p : params) p.requires_grad_(false);
    // the weights moved: observe the ranges again
    model.calibrate(x, o.percentile);
    r.qat_accuracy = accuracy(model, x, y, true);
    if (r.qat_accuracy < r.ptq_accuracy) {
      // fine-tuning made it worse on its own images: keep the calibrated weights
      torch::NoGradGuard no_grad;
      for (auto& [name, w] : model.weights()) w.copy_(calibrated_weights.at(name));
      model.calibrate(x, o.percentile);
      r.reverted = true;
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log << "    int8 " << model.graph().name << ": " << n << " calibration images, fp32 "
      << std::fixed << std::setprecision(2) << 100 * r.fp32_accuracy << "%, calibrated "
      << 100 * r.ptq_accuracy << "%";
  if (o.qat_steps > 0)
    log << ", after " << o.qat_steps << " QAT steps " << 100 * r.qat_accuracy << "%"
        << (r.reverted ? " (worse: calibrated weights kept)" : "");
  log << " (" << std::setprecision(1) << r.seconds << " s)\n";
  return r;
}

Branch lower_int8(const TorchBranch& model, const std::string& name, TensorStore& store,
                  const Branch* shared) {
  if (!model.calibrated()) throw std::logic_error("int8: lower_int8 before calibrate()");
  if (shared && shared->nodes.size() != model.graph().nodes.size())
    throw std::invalid_argument("int8: the shared graph of " + name + " is not the model's");
  // a shared node's weight params and slice, carried over to the int8 node m
  auto share = [&](size_t i, Node& m) {
    const Node& s = shared->nodes[i];
    if (s.output != model.graph().nodes[i].output || s.op != m.op)
      throw std::invalid_argument("int8: the shared graph of " + name + " is not the model's");
    for (const char* slot : {"weight", "weight_mul", "bias"}) {
      m.params.erase(slot);
      if (s.params.count(slot)) m.params[slot] = s.params.at(slot);
    }
    for (const char* key : {"weight_slice", "weight_slice_halves"})
      if (s.attrs.has(key)) m.attrs.set(key, s.attrs.get_ints(key, {}));
  };
  torch::NoGradGuard no_grad;
  const Branch& src = model.graph();
  const auto& act = model.activations();
  const auto& weights = model.weights();
  const std::string prefix = name + "/";
  const std::string qin = src.input + "#q", qout = src.output + "#q";
  const bool float_head = !model.float_head().empty();
  auto rename = [&](const std::string& t) {
    return t == src.input ? qin : t == src.output && !float_head ? qout : t;
  };
  auto set_out = [](Node& n, QuantParams p) {
    n.attrs.set("out_scale", static_cast<double>(p.scale))
        .set("out_zero_point", static_cast<double>(p.zero_point));
  };
  Branch b;
  b.name = name;
  b.input = src.input;
  b.output = src.output;
  Node q;
  q.op = "quantize";
  q.inputs = {src.input};
  q.output = qin;
  set_out(q, act.at(src.input));
  b.nodes.push_back(q);
  int counter = 0;
  for (size_t i = 0; i < src.nodes.size(); ++i) {
    const Node& n = src.nodes[i];
    Node m = n;
    for (auto& input : m.inputs) input = rename(input);
    m.output = rename(n.output);
    if (n.output == model.float_head()) {
      // the classifier reads dequantized features and answers float logits: a tie between
      // two int8 logits would otherwise decide top-1 by an output rounding
      Node d;
      d.op = "dequantize";
      d.inputs = {m.inputs.at(0)};
      d.output = m.inputs[0] + "#f";
      b.nodes.push_back(d);
      m.inputs = {d.output};
      if (shared) {
        share(i, m);
        b.nodes.push_back(m);
        continue;
      }
      const std::string base = prefix + "f" + std::to_string(counter++) + "." + n.op;
      m.params["weight"] = store.add(base + ".w", weights.at(n.params.at("weight")));
      if (n.params.count("bias"))
        m.params["bias"] = store.add(base + ".b", weights.at(n.params.at("bias")));
      b.nodes.push_back(m);
      continue;
    }
    if (shared && (n.op == "conv2d" || n.op == "fully_connected")) {
      share(i, m);
      m.attrs.set("weight_quantize", "int8")
          .set("bias_input_scale", static_cast<double>(act.at(n.inputs.at(0)).scale));
    } else if (n.op == "conv2d" || n.op == "fully_connected") {
      const auto& w = weights.at(n.params.at("weight"));
      const auto qw = compress::quantize_weight_per_channel(w);
      const auto bias =
          n.params.count("bias") ? weights.at(n.params.at("bias")) : torch::zeros({w.size(0)});
      const auto in_params = act.at(n.inputs.at(0));
      const std::string base = prefix + "q" + std::to_string(counter++) + "." + n.op;
      m.params["weight"] =
          store.add(base + ".w", n.op == "conv2d" ? qw.q.permute({0, 2, 3, 1}) : qw.q);
      m.params["weight_scale"] = store.add(base + ".ws", qw.scale);
      m.params["bias"] = store.add(base + ".b", compress::quantize_bias(bias, in_params, qw));
    }
    if (kRequantizing.count(n.op)) set_out(m, act.at(n.output));
    b.nodes.push_back(m);
  }
  if (!float_head) {
    Node d;
    d.op = "dequantize";
    d.inputs = {qout};
    d.output = src.output;
    b.nodes.push_back(d);
  }
  return b;
}

Int8Twin make_int8_twin(const std::string& spec, const compress::StateDict& state,
                        const std::string& name, const torch::Tensor& images,
                        const torch::Tensor& labels, const QuantizationOptions& options,
                        TensorStore& store, std::ostream& log) {
  BundleWriter scratch;
  TensorStore scratch_store(scratch);
  Int8Twin twin;
  twin.model = std::make_unique<TorchBranch>(lower_model(spec, state, name, scratch_store),
                                             scratch.constants());
  if (!options.shared_weights) {
    twin.report = quantize_branch(*twin.model, images, labels, options, log);
    twin.graph = lower_int8(*twin.model, name, store);
    return twin;
  }
  QuantizationOptions calibrate_only = options;
  calibrate_only.qat_steps = 0;
  twin.report = quantize_branch(*twin.model, images, labels, calibrate_only, log);
  const double loss = 100 * (twin.report.fp32_accuracy - twin.report.ptq_accuracy);
  if (loss > options.shared_max_loss && options.qat_steps > 0) {
    log << "    int8 " << name << ": calibrated loses " << std::fixed << std::setprecision(2)
        << loss << " pt > " << options.shared_max_loss << ": fine-tuning weights of its own\n";
    twin.report = quantize_branch(*twin.model, images, labels, options, log);
    if (!twin.report.reverted) {
      twin.graph = lower_int8(*twin.model, name, store);
      return twin;
    }
    // the calibrated (shared) weights were kept: nothing of its own to store
  }
  // the same graph again, now into the bundle's store: it finds the fp32 twin's tensors
  const Branch fp32 = lower_model(spec, state, name, store);
  twin.graph = lower_int8(*twin.model, name, store, &fp32);
  twin.report.shared_weights = true;
  log << "    int8 " << name << ": weights shared with the fp32 branch, quantized when prepared\n";
  return twin;
}

}  // namespace adascale::exporter
