// Branch -> ONNX. The runtime's graph is NHWC; the ONNX graph is NCHW throughout, so only the
// places where the layout shows change: conv weights (OHWI -> OIHW), channel axes (last -> 1),
// and flattening a spatial tensor (NHWC order, so a Transpose goes first).
#include "export/onnx_export.h"

// the ML flavour of onnx.proto, which Debian's libonnx_proto is built from; onnx_pb.h defines
// the export macros the generated header needs
#ifdef ADASCALE_WITH_ONNX
#define ONNX_ML 1
#include <onnx/onnx_pb.h>
#endif

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "base/durable_file.h"
#include "runtime/branch_costs.h"

namespace adascale::exporter {
#ifdef ADASCALE_WITH_ONNX
namespace {

using onnx::TensorProto;

// ONNX IR version 7 is the one opset 13 came with.
constexpr int64_t kIrVersion = 7;

const std::set<std::string> kSupportedOps = {
    "conv2d",     "batchnorm",  "fully_connected", "relu",   "relu6",   "add",
    "max_pool2d", "avg_pool2d", "global_avg_pool", "concat", "flatten", "softmax",
    "exit",       "quantize",   "dequantize"};

int onnx_dtype(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return TensorProto::FLOAT;
    case DType::kI8:
      return TensorProto::INT8;
    case DType::kI32:
      return TensorProto::INT32;
  }
  return TensorProto::UNDEFINED;
}

// NHWC dims as NCHW; other ranks unchanged
Shape to_nchw(const Shape& s) { return s.size() == 4 ? Shape{s[0], s[3], s[1], s[2]} : s; }

class Converter {
 public:
  Converter(const Branch& branch, const ConstantMap& constants, const BundleInput& input)
      : branch_(branch), constants_(constants), input_(input) {}

  onnx::ModelProto run(const std::vector<std::string>& classes, const std::string& model_name,
                       bool* int8);

 private:
  [[noreturn]] void fail(const Node& node, const std::string& why) const {
    throw std::runtime_error("onnx export: branch '" + branch_.name + "', node '" + node.output +
                             "' (op " + node.op + "): " + why);
  }
  // the ONNX name of a runtime tensor
  std::string value(const std::string& tensor) const {
    if (tensor == branch_.input) return "input";
    if (tensor == branch_.output) return "logits";
    if (tensor == "input" || tensor == "logits") return tensor + "#t";
    return tensor;
  }
  // a name for an intermediate value, unique in the graph (deterministic)
  std::string fresh(const std::string& base) {
    std::string name = base;
    for (int n = 2; used_.count(name); ++n) name = base + "#" + std::to_string(n);
    used_.insert(name);
    return name;
  }
  onnx::NodeProto* add(const std::string& op, const std::vector<std::string>& inputs,
                       const std::string& output) {
    onnx::NodeProto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(output + "/" + op);
    for (const auto& in : inputs) n->add_input(in);
    n->add_output(output);
    return n;
  }
  static void attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  // An initializer, once per name; raw little-endian data as stored in the bundle.
  const std::string& initializer(const std::string& name, DType dtype, const Shape& dims,
                                 const void* data) {
    auto it = initializers_.find(name);
    if (it != initializers_.end()) {
      if (it->second != dims) throw std::logic_error("initializer " + name + " with two shapes");
      return it->first;
    }
    used_.insert(name);
    TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx_dtype(dtype));
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(data, static_cast<size_t>(shape_elements(dims)) * dtype_size(dtype));
    return initializers_.emplace(name, dims).first->first;
  }
  template <typename T>
  const std::string& initializer(const std::string& name, DType dtype, const Shape& dims,
                                 const std::vector<T>& values) {
    return initializer(name, dtype, dims, static_cast<const void*>(values.data()));
  }
  const ConstTensor& constant(const Node& node, const std::string& slot) const {
    auto p = node.params.find(slot);
    if (p == node.params.end()) fail(node, "no " + slot);
    auto c = derived_.constants.find(p->second);
    if (c == derived_.constants.end() || !c->second.data) fail(node, "no data for " + p->second);
    return c->second;
  }
  const TensorInfo& info(const std::string& tensor) const { return tensors_.at(tensor); }

  // scale and zero point initializers of an int8 activation tensor
  std::pair<std::string, std::string> quant_params(const std::string& tensor) {
    const TensorInfo& t = info(tensor);
    const std::vector<float> scale{t.scale};
    const std::vector<int8_t> zero{static_cast<int8_t>(t.zero_point)};
    return {initializer(value(tensor) + "#scale", DType::kF32, {}, scale),
            initializer(value(tensor) + "#zero_point", DType::kI8, {}, zero)};
  }
  // a runtime tensor as a float value: itself, or its DequantizeLinear (once per tensor)
  std::string float_input(const std::string& tensor) {
    if (info(tensor).dtype == DType::kF32) return value(tensor);
    auto it = dequantized_.find(tensor);
    if (it != dequantized_.end()) return it->second;
    const auto [scale, zero] = quant_params(tensor);
    const std::string out = fresh(value(tensor) + "#dq");
    add("DequantizeLinear", {value(tensor), scale, zero}, out);
    return dequantized_[tensor] = out;
  }
  // Where a node's float result goes: its tensor, or (int8 output) a value that finish()
  // quantizes into it.
  std::string result(const Node& node) {
    return info(node.output).dtype == DType::kF32 ? value(node.output)
                                                  : fresh(value(node.output) + "#f");
  }
  void finish(const Node& node, const std::string& result_value) {
    if (info(node.output).dtype == DType::kF32) return;
    const auto [scale, zero] = quant_params(node.output);
    add("QuantizeLinear", {result_value, scale, zero}, value(node.output));
  }
  // op's output, then the node's fused activation, into target
  std::string with_activation(const Node& node, const std::string& target) {
    Activation act;
    if (!parse_activation(node.attrs, &act).ok()) fail(node, "bad activation");
    return act == Activation::kNone ? target : fresh(value(node.output) + "#pre");
  }
  void activation(const Node& node, const std::string& from, const std::string& target) {
    Activation act;
    parse_activation(node.attrs, &act);
    if (act == Activation::kRelu) add("Relu", {from}, target);
    if (act == Activation::kRelu6) relu6(from, target);
  }
  // relu6(x) = Relu(x) - Relu(x - 6), not Clip: OpenCV 4.6 reads only the attribute form of
  // Clip (opset < 11), and neither Min nor Max with a constant. Exact for x < 12 (x - 6 is exact
  // there), else within half an ulp of x.
  void relu6(const std::string& from, const std::string& target) {
    if (six_.empty())
      six_ = initializer(fresh("relu6#six"), DType::kF32, {1}, std::vector<float>{6.0f});
    const std::string relu = fresh(target + "#relu"), shifted = fresh(target + "#minus6"),
                      excess = fresh(target + "#excess");
    add("Relu", {from}, relu);
    add("Sub", {from, six_}, shifted);
    add("Relu", {shifted}, excess);
    add("Sub", {relu, excess}, target);
  }
  // [N, ...] -> [N, rest] in the runtime's (NHWC) order
  std::string flatten_nhwc(const std::string& from, const Shape& nhwc, const std::string& target) {
    std::string x = from;
    if (nhwc.size() == 4 && nhwc[1] * nhwc[2] > 1) {
      x = fresh(target + "#nhwc");
      attr(add("Transpose", {from}, x), "perm", std::vector<int64_t>{0, 2, 3, 1});
    }
    attr(add("Flatten", {x}, target), "axis", 1);
    return target;
  }
  // weight (and weight_scale, int8) of a conv / fc as a float value; 4-D weights become OIHW
  std::string weight(const Node& node) {
    const ConstTensor& w = constant(node, "weight");
    const std::string& name = node.params.at("weight");
    Shape dims = w.shape;
    std::vector<uint8_t> bytes(static_cast<size_t>(shape_elements(dims)) * dtype_size(w.dtype));
    const size_t elem = dtype_size(w.dtype);
    if (dims.size() == 4) {
      const int64_t O = dims[0], kh = dims[1], kw = dims[2], I = dims[3];
      const auto* src = static_cast<const uint8_t*>(w.data);
      for (int64_t o = 0; o < O; ++o)
        for (int64_t y = 0; y < kh; ++y)
          for (int64_t x = 0; x < kw; ++x)
            for (int64_t i = 0; i < I; ++i)
              std::copy_n(src + (((o * kh + y) * kw + x) * I + i) * elem, elem,
                          bytes.data() + (((o * I + i) * kh + y) * kw + x) * elem);
      dims = {O, I, kh, kw};
    } else {
      std::copy_n(static_cast<const uint8_t*>(w.data), bytes.size(), bytes.data());
    }
    const std::string& init = initializer(value(name), w.dtype, dims, bytes.data());
    if (w.dtype == DType::kF32) return init;
    // int8: per-output-channel symmetric scales (axis 0), zero points 0
    const ConstTensor& ws = constant(node, "weight_scale");
    const std::vector<int8_t> zeros(static_cast<size_t>(dims[0]), 0);
    const std::string out = fresh(init + "#dq");
    attr(add("DequantizeLinear",
             {init,
              initializer(value(node.params.at("weight_scale")), DType::kF32, ws.shape, ws.data),
              initializer(init + "#zero_point", DType::kI8, {dims[0]}, zeros)},
             out),
         "axis", 0);
    return out;
  }
  // bias as a float value ("" when none); int8: int32 at scale input_scale * weight_scale[o]
  std::string bias(const Node& node, int64_t out_channels) {
    if (!node.params.count("bias")) return "";
    const ConstTensor& b = constant(node, "bias");
    const std::string init = initializer(value(node.params.at("bias")), b.dtype, b.shape, b.data);
    if (b.dtype == DType::kF32) return init;
    const float in_scale = info(node.inputs[0]).scale;
    const auto* ws = static_cast<const float*>(constant(node, "weight_scale").data);
    std::vector<float> scale(static_cast<size_t>(out_channels));
    for (int64_t o = 0; o < out_channels; ++o) scale[o] = in_scale * ws[o];
    const std::vector<int32_t> zeros(scale.size(), 0);
    const std::string out = fresh(init + "#dq");
    attr(add("DequantizeLinear",
             {init,
              initializer(fresh(value(node.output) + "#bias_scale"), DType::kF32, {out_channels},
                          scale),
              initializer(fresh(value(node.output) + "#bias_zero_point"), DType::kI32,
                          {out_channels}, zeros)},
             out),
         "axis", 0);
    return out;
  }
  void window(const Node& node, onnx::NodeProto* n, const char* kernel_key) {
    const auto kernel = node.attrs.get_ints(kernel_key, {});
    const auto stride = node.attrs.get_ints("stride", {1, 1});
    const auto pad = node.attrs.get_ints("pad", {0, 0, 0, 0});
    if (kernel.size() != 2 || stride.size() != 2 || pad.size() != 4) fail(node, "bad window");
    attr(n, "kernel_shape", kernel);
    attr(n, "strides", stride);
    // both are [top, left, bottom, right]: ONNX's x1_begin, x2_begin, x1_end, x2_end
    attr(n, "pads", pad);
  }
  void check_attrs(const Node& node) const;
  void convert(const Node& node);

  const Branch& branch_;
  const ConstantMap& constants_;
  const BundleInput& input_;
  DerivedWeights derived_;
  std::unordered_map<std::string, TensorInfo> tensors_;
  onnx::GraphProto* graph_ = nullptr;
  std::set<std::string> used_;
  std::map<std::string, Shape> initializers_;
  std::map<std::string, std::string> dequantized_;
  std::string six_;
};

void Converter::check_attrs(const Node& node) const {
  if (!kSupportedOps.count(node.op)) fail(node, "no ONNX conversion for this op");
  if (node.attrs.has("dilation") &&
      node.attrs.get_ints("dilation", {}) != std::vector<int64_t>{1, 1})
    fail(node, "only dilation [1,1] is supported");
}

void Converter::convert(const Node& node) {
  const std::string& op = node.op;
  const Shape& out_shape = info(node.output).shape;
  if (op == "quantize") {
    const auto [scale, zero] = quant_params(node.output);
    add("QuantizeLinear", {value(node.inputs[0]), scale, zero}, value(node.output));
    return;
  }
  if (op == "dequantize") {
    const auto [scale, zero] = quant_params(node.inputs[0]);
    add("DequantizeLinear", {value(node.inputs[0]), scale, zero}, value(node.output));
    return;
  }
  // data movement: any dtype, no requantization
  if (op == "exit") {
    add("Identity", {value(node.inputs[0])}, value(node.output));
    return;
  }
  if (op == "flatten") {
    const Shape& in = info(node.inputs[0]).shape;
    if (in.size() != 2 && in.size() != 4) fail(node, "input of rank " + std::to_string(in.size()));
    flatten_nhwc(value(node.inputs[0]), in, value(node.output));
    return;
  }
  if (op == "concat") {
    if (out_shape.size() != 2 && out_shape.size() != 4)
      fail(node, "output of rank " + std::to_string(out_shape.size()));
    std::vector<std::string> ins;
    for (const auto& t : node.inputs) ins.push_back(value(t));
    attr(add("Concat", ins, value(node.output)), "axis", 1);  // the channel axis either way
    return;
  }
  // arithmetic: float in, float op, quantized out where the runtime's output is int8
  std::vector<std::string> ins;
  for (const auto& t : node.inputs) ins.push_back(float_input(t));
  const std::string target = result(node);
  if (op == "conv2d" || op == "fully_connected") {
    const std::string pre = with_activation(node, target);
    const std::string w = weight(node);
    std::string b = bias(node, out_shape.back());
    if (op == "conv2d") {
      std::vector<std::string> args{ins[0], w};
      if (!b.empty()) args.push_back(b);
      onnx::NodeProto* n = add("Conv", args, pre);
      window(node, n, "kernel");
      attr(n, "group", node.attrs.get_int("groups", 1));
      attr(n, "dilations", std::vector<int64_t>{1, 1});
    } else {
      const Shape& in = info(node.inputs[0]).shape;
      std::string x = ins[0];
      if (in.size() != 2) x = flatten_nhwc(x, in, fresh(value(node.output) + "#flat"));
      if (b.empty()) {  // a zero C: some importers want Gemm's third input
        const std::vector<float> zeros(static_cast<size_t>(out_shape.back()), 0.0f);
        b = initializer(fresh(value(node.output) + "#zero_bias"), DType::kF32, {out_shape.back()},
                        zeros);
      }
      attr(add("Gemm", {x, w, b}, pre), "transB", 1);
    }
    activation(node, pre, target);
  } else if (op == "add") {
    const std::string pre = with_activation(node, target);
    add("Add", ins, pre);
    activation(node, pre, target);
  } else if (op == "relu") {
    add("Relu", ins, target);
  } else if (op == "relu6") {
    relu6(ins[0], target);
  } else if (op == "batchnorm") {
    // y = x * scale[c] + shift[c]: [C, 1, 1] broadcasts over NCHW
    const ConstTensor& scale = constant(node, "scale");
    const ConstTensor& shift = constant(node, "shift");
    const Shape c11{scale.shape[0], 1, 1};
    const std::string scaled = fresh(value(node.output) + "#scaled");
    add("Mul",
        {ins[0],
         initializer(value(node.params.at("scale")) + "#c11", DType::kF32, c11, scale.data)},
        scaled);
    add("Add",
        {scaled,
         initializer(value(node.params.at("shift")) + "#c11", DType::kF32, c11, shift.data)},
        target);
  } else if (op == "max_pool2d") {
    window(node, add("MaxPool", ins, target), "pool");
  } else if (op == "avg_pool2d") {
    onnx::NodeProto* n = add("AveragePool", ins, target);
    window(node, n, "pool");
    attr(n, "count_include_pad", 0);  // the runtime divides by the pixels inside the input
  } else if (op == "global_avg_pool") {
    add("GlobalAveragePool", ins, target);  // [N, C, 1, 1]: the runtime's [N, 1, 1, C]
  } else if (op == "softmax") {
    if (out_shape.size() != 2 && out_shape.size() != 4)
      fail(node, "input of rank " + std::to_string(out_shape.size()));
    attr(add("Softmax", ins, target), "axis", 1);  // the runtime's last axis: channels
  } else {
    fail(node, "no ONNX conversion for this op");
  }
  finish(node, target);
}

onnx::ModelProto Converter::run(const std::vector<std::string>& classes,
                                const std::string& model_name, bool* int8) {
  for (const Node& node : branch_.nodes) check_attrs(node);
  const auto failed = [&](const Status& s) {
    throw std::runtime_error("onnx export: branch '" + branch_.name + "': " + s.message);
  };
  Status s = derive_weights(branch_, constants_, /*materialize=*/true, &derived_);
  if (!s.ok()) failed(s);
  s = infer_shapes(derived_.branch, input_.nhwc(), derived_.constants, &tensors_);
  if (!s.ok()) failed(s);
  if (!tensors_.count(branch_.output))
    failed(error_status(ErrorCode::kInvalidGraph, "output " + branch_.output + " is not defined"));

  onnx::ModelProto model;
  model.set_ir_version(kIrVersion);
  model.set_producer_name("adascale");
  model.set_model_version(1);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  graph_ = model.mutable_graph();
  graph_->set_name(branch_.name);
  for (const auto& [name, t] : tensors_) used_.insert(value(name));
  used_.insert("input");

  auto value_info = [](onnx::ValueInfoProto* v, const std::string& name, const Shape& dims) {
    v->set_name(name);
    auto* type = v->mutable_type()->mutable_tensor_type();
    type->set_elem_type(TensorProto::FLOAT);
    for (int64_t d : dims) type->mutable_shape()->add_dim()->set_dim_value(d);
  };
  value_info(graph_->add_input(), "input", input_.shape_nchw);
  const TensorInfo& out = info(branch_.output);
  if (out.dtype != DType::kF32) failed(error_status(ErrorCode::kInvalidGraph, "output not f32"));
  value_info(graph_->add_output(), "logits", to_nchw(out.shape));

  *int8 = false;
  for (const Node& node : derived_.branch.nodes) {
    convert(node);
    *int8 = *int8 || info(node.output).dtype == DType::kI8;
  }

  const nlohmann::json mean = input_.mean, std_dev = input_.std;
  graph_->set_doc_string(
      "AdaScale branch " + branch_.name + " of model " + model_name +
      ". input: float NCHW, normalized per channel as x = (pixel - mean[c]) / std[c] with mean " +
      mean.dump() + " and std " + std_dev.dump() +
      " (the runtime normalizes before its graph; this model starts at the graph). output: "
      "logits." +
      (*int8 ? " Int8 arithmetic as QuantizeLinear / DequantizeLinear around float operators."
             : ""));
  auto meta = [&](const std::string& key, const std::string& v) {
    auto* p = model.add_metadata_props();
    p->set_key(key);
    p->set_value(v);
  };
  meta("adascale.model", model_name);
  meta("adascale.branch", branch_.name);
  meta("adascale.input_mean", mean.dump());
  meta("adascale.input_std", std_dev.dump());
  meta("adascale.classes", nlohmann::json(classes).dump());
  return model;
}

}  // namespace

OnnxModel export_onnx_graph(const Branch& branch, const ConstantMap& constants,
                            const BundleInput& input, const std::vector<std::string>& classes,
                            const std::string& model_name) {
  Converter converter(branch, constants, input);
  OnnxModel out;
  const onnx::ModelProto model = converter.run(classes, model_name, &out.int8);
  out.branch = branch.name;
  out.nodes = static_cast<size_t>(model.graph().node_size());
  if (!model.SerializeToString(&out.bytes))
    throw std::runtime_error("onnx export: branch '" + branch.name + "': serialization failed");
  return out;
}

#else
// a build without Debian's libonnx-dev (e.g. against a pip LibTorch): everything but the
// serialization works, and the export says what it lacks
OnnxModel export_onnx_graph(const Branch& branch, const ConstantMap&, const BundleInput&,
                            const std::vector<std::string>&, const std::string&) {
  throw std::runtime_error("onnx export: branch '" + branch.name +
                           "': this build was configured without ONNX (libonnx-dev)");
}
#endif

OnnxModel export_onnx_branch(const Bundle& bundle, const Branch& branch) {
  return export_onnx_graph(branch, bundle.constants(), bundle.input(), bundle.classes(),
                           bundle.model_name());
}

std::vector<const Branch*> select_onnx_branches(const Bundle& bundle, const std::string& spec) {
  std::vector<const Branch*> out;
  if (spec.empty() || spec == "all") {
    for (const Branch& b : bundle.branches()) out.push_back(&b);
  } else if (spec == "pareto") {
    for (const Branch& b : bundle.branches()) {
      BranchCosts costs;
      const Status s = parse_branch_costs(b.name, b.costs_json, &costs);
      if (!s.ok()) throw std::runtime_error(s.message);
      if (costs.pareto.value_or(false)) out.push_back(&b);
    }
    if (out.empty()) throw std::runtime_error("no branch of the bundle is marked pareto");
  } else {
    std::stringstream names(spec);
    std::string name;
    while (std::getline(names, name, ',')) {
      const Branch* b = bundle.find_branch(name);
      if (!b) throw std::runtime_error("no branch named '" + name + "' in the bundle");
      if (std::find(out.begin(), out.end(), b) == out.end()) out.push_back(b);
    }
  }
  if (out.empty()) throw std::runtime_error("no branches selected");
  return out;
}

std::string onnx_file_name(const std::string& branch_name) {
  std::string out = branch_name;
  for (char& c : out) {
    const bool keep = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                      c == '@' || c == '+' || c == '-';
    c = c == '>' ? '+' : keep ? c : '_';
  }
  if (out.empty() || out[0] == '.') out = "_" + out;
  return out;
}

std::vector<OnnxFile> export_onnx_files(const std::string& bundle_path, const std::string& spec,
                                        const std::string& out_dir,
                                        const std::function<void(const OnnxFile&)>& on_file) {
  std::unique_ptr<Bundle> bundle;
  const Status s = Bundle::open(bundle_path, &bundle);
  if (!s.ok()) throw std::runtime_error(bundle_path + ": " + s.message);
  std::vector<OnnxModel> models;
  std::map<std::string, std::string> file_owner;
  for (const Branch* b : select_onnx_branches(*bundle, spec)) {
    const std::string file = onnx_file_name(b->name) + ".onnx";
    if (!file_owner.emplace(file, b->name).second)
      throw std::runtime_error("branches '" + file_owner[file] + "' and '" + b->name +
                               "' would both be written to " + file);
    models.push_back(export_onnx_branch(*bundle, *b));
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw std::runtime_error(out_dir + ": " + ec.message());
  std::vector<OnnxFile> files;
  for (const OnnxModel& m : models) {
    OnnxFile f{m.branch,
               (std::filesystem::path(out_dir) / (onnx_file_name(m.branch) + ".onnx")).string(),
               m.bytes.size(),
               m.nodes,
               m.opset,
               m.int8};
    std::string error;
    if (!base::write_file_atomic(f.path, m.bytes.data(), m.bytes.size(), &error))
      throw std::runtime_error(error);
    if (on_file) on_file(f);
    files.push_back(f);
  }
  return files;
}

}  // namespace adascale::exporter
