#include "export/model_lowering.h"

#include <cstring>
#include <stdexcept>

#include "compress/conv_variants.h"
#include "models/module_state.h"

namespace adascale::exporter {
namespace {

constexpr double kBnEps = 1e-5;  // LibTorch's BatchNorm2d default

// a convolution with its BatchNorm: the folded weight is weight * scale (per output channel)
struct Folded {
  torch::Tensor weight;  // [O, I/g, kh, kw], unfolded
  torch::Tensor scale;   // [O] or undefined (no BatchNorm)
  torch::Tensor bias;    // [O] or undefined
};

const torch::Tensor& get(const compress::StateDict& s, const std::string& name) {
  auto it = s.find(name);
  if (it == s.end()) throw std::invalid_argument("export: checkpoint has no tensor '" + name + "'");
  return it->second;
}

// folds BN channels [offset, offset + out) into a conv with `out` output channels
Folded fold(const compress::StateDict& s, const std::string& conv, const std::string& bn,
            int64_t offset = 0) {
  auto w = get(s, conv + ".weight").to(torch::kFloat64);
  const int64_t out = w.size(0);
  auto pick = [&](const char* field) {
    auto t = get(s, bn + "." + field).to(torch::kFloat64);
    if (offset + out > t.size(0))
      throw std::invalid_argument("export: " + bn + " has fewer channels than " + conv);
    return t.slice(0, offset, offset + out);
  };
  auto scale = pick("weight") / (pick("running_var") + kBnEps).sqrt();
  Folded f;
  f.weight = w.to(torch::kFloat32);
  f.scale = scale.to(torch::kFloat32);
  f.bias = (pick("bias") - pick("running_mean") * scale).to(torch::kFloat32);
  return f;
}

Folded plain(const compress::StateDict& s, const std::string& conv) {
  auto w = get(s, conv + ".weight").to(torch::kFloat32);
  return {w, torch::Tensor(), torch::Tensor()};
}

class Builder {
 public:
  Builder(Branch& b, TensorStore& store, const std::string& prefix)
      : branch_(b), store_(store), prefix_(prefix) {}

  std::string conv(const std::string& in, const std::string& module, const Folded& f,
                   std::vector<int64_t> stride, std::vector<int64_t> pad, int64_t groups,
                   const char* activation) {
    Node n;
    n.op = "conv2d";
    n.inputs = {in};
    n.output = fresh(module);
    // OIHW -> OHWI: the runtime (and XNNPACK) read [groups][group_out][kh][kw][group_in]
    weight(n, module, f.weight.permute({0, 2, 3, 1}), f.scale);
    if (f.bias.defined()) n.params["bias"] = store_.add(prefix_ + module + ".b", f.bias);
    n.attrs.set("kernel", std::vector<int64_t>{f.weight.size(2), f.weight.size(3)})
        .set("stride", stride)
        .set("pad", pad)
        .set("groups", static_cast<double>(groups))
        .set("activation", activation);
    branch_.nodes.push_back(n);
    return n.output;
  }

  std::string node(const std::string& op, std::vector<std::string> inputs, const std::string& name,
                   Attrs attrs = {}) {
    Node n;
    n.op = op;
    n.inputs = std::move(inputs);
    n.output = fresh(name);
    n.attrs = std::move(attrs);
    branch_.nodes.push_back(n);
    return n.output;
  }

  std::string linear(const std::string& in, const torch::Tensor& w, const torch::Tensor& b) {
    Node n;
    n.op = "fully_connected";
    n.inputs = {in};
    n.output = "logits";
    weight(n, "fc", w.to(torch::kFloat32), torch::Tensor());
    n.params["bias"] = store_.add(prefix_ + "fc.b", b.to(torch::kFloat32));
    branch_.nodes.push_back(n);
    return n.output;
  }

 private:
  // the weight of `n`: shared (a slice of a stored weight, BatchNorm scale applied by the
  // runtime) or folded here
  void weight(Node& n, const std::string& module, const torch::Tensor& w,
              const torch::Tensor& scale) {
    std::vector<int64_t> view(static_cast<size_t>(w.dim()), 1);
    view[0] = -1;
    if (!store_.shares_slices()) {
      n.params["weight"] =
          store_.add(prefix_ + module + ".w", scale.defined() ? w * scale.view(view) : w);
      return;
    }
    const auto shared = store_.add_weight(prefix_ + module + ".w", w);
    n.params["weight"] = shared.name;
    if (!shared.keep.empty()) n.attrs.set("weight_slice", shared.keep);
    if (!shared.halves.empty()) n.attrs.set("weight_slice_halves", shared.halves);
    if (scale.defined()) n.params["weight_mul"] = store_.add(prefix_ + module + ".s", scale);
  }
  std::string fresh(const std::string& base) { return base + "#" + std::to_string(counter_++); }
  Branch& branch_;
  TensorStore& store_;
  std::string prefix_;
  int counter_ = 0;
};

std::vector<int64_t> same_pad(int64_t kh, int64_t kw) { return {kh / 2, kw / 2, kh / 2, kw / 2}; }

// one convolution slot followed by its BatchNorm (bn, folded into the slot's last layer)
std::string lower_slot(Builder& g, const compress::StateDict& s, const std::string& in,
                       const std::string& name, const compress::ConvVariantSpec& spec,
                       int64_t stride, const std::string& bn, const char* activation) {
  if (spec.kind == "conv")
    return g.conv(in, name, fold(s, name, bn), {stride, stride}, same_pad(3, 3), 1, activation);
  if (spec.kind == "lowrank") {
    auto v = g.conv(in, name + ".v", plain(s, name + ".v"), {stride, 1}, {1, 0, 1, 0}, 1, "none");
    return g.conv(v, name + ".h", fold(s, name + ".h", bn), {1, stride}, {0, 1, 0, 1}, 1,
                  activation);
  }
  if (spec.kind == "dpconv") {
    const auto dw = fold(s, name + ".dw", name + ".dw_bn");
    auto t =
        g.conv(in, name + ".dw", dw, {stride, stride}, same_pad(3, 3), dw.weight.size(0), "relu");
    return g.conv(t, name + ".pw", fold(s, name + ".pw", bn), {1, 1}, {0, 0, 0, 0}, 1, activation);
  }
  if (spec.kind == "fire") {
    auto sq = g.conv(in, name + ".squeeze", fold(s, name + ".squeeze", name + ".squeeze_bn"),
                     {stride, stride}, {0, 0, 0, 0}, 1, "relu");
    // the BN after the slot is per channel, so it splits across the two concatenated expands
    const int64_t half = get(s, name + ".expand1.weight").size(0);
    const auto f1 = fold(s, name + ".expand1", bn, 0);
    const auto f3 = fold(s, name + ".expand3", bn, half);
    auto a = g.conv(sq, name + ".expand1", f1, {1, 1}, {0, 0, 0, 0}, 1, activation);
    auto b = g.conv(sq, name + ".expand3", f3, {1, 1}, same_pad(3, 3), 1, activation);
    return g.node("concat", {a, b}, name + ".concat");
  }
  throw std::invalid_argument("export: unknown convolution kind '" + spec.kind + "'");
}

}  // namespace

std::string TensorStore::add(const std::string& name, const torch::Tensor& tensor) {
  DType dtype = DType::kF32;
  torch::Tensor t;
  if (tensor.scalar_type() == torch::kInt8) {
    dtype = DType::kI8;
    t = tensor.contiguous();
  } else if (tensor.scalar_type() == torch::kInt32) {
    dtype = DType::kI32;
    t = tensor.contiguous();
  } else {
    t = tensor.to(torch::kFloat32).contiguous();
  }
  const size_t bytes = static_cast<size_t>(t.numel()) * dtype_size(dtype);
  const uint32_t crc = crc32(t.data_ptr(), bytes);
  const Shape shape(t.sizes().begin(), t.sizes().end());
  auto range = by_crc_.equal_range(crc);
  for (auto it = range.first; it != range.second; ++it) {
    const auto& stored = writer_.constants().at(it->second);
    if (stored.dtype == dtype && stored.shape == shape &&
        std::memcmp(stored.data, t.data_ptr(), bytes) == 0) {
      ++shared_hits_;
      return it->second;
    }
  }
  auto status = writer_.add_tensor(name, dtype, shape, t.data_ptr());
  if (!status.ok()) throw std::runtime_error("export: tensor " + name + ": " + status.message);
  by_crc_.emplace(crc, name);
  return name;
}

TensorStore::SharedWeight TensorStore::add_weight(const std::string& name,
                                                  const torch::Tensor& weight) {
  auto w = weight.to(torch::kFloat32).contiguous();
  const Shape shape(w.sizes().begin(), w.sizes().end());
  const int64_t rows = shape.front(), cols = shape.back();
  for (const auto& base : weights_) {
    const ConstTensor& c = writer_.constants().at(base);
    if (c.shape.size() != shape.size() || c.shape.front() < rows || c.shape.back() < cols ||
        !std::equal(shape.begin() + 1, shape.end() - 1, c.shape.begin() + 1))
      continue;
    auto stored = torch::from_blob(const_cast<void*>(c.data), c.shape, torch::kFloat32);
    // an axis cut to `keep` of its entries: the leading ones, or (halves) the leading ones of
    // each half, as the runtime's weight_slice_halves reads them
    auto cut = [](const torch::Tensor& t, int64_t dim, int64_t keep, bool halves) {
      return halves ? t.index_select(dim, compress::fire_channel_index(keep, t.size(dim)))
                    : t.narrow(dim, 0, keep);
    };
    for (int mode = 0; mode < 4; ++mode) {
      const bool halve_rows = mode & 1, halve_cols = mode & 2;
      if ((halve_rows && c.shape.front() == rows) || (halve_cols && c.shape.back() == cols))
        continue;  // a whole axis is the same either way
      if (!torch::equal(cut(cut(stored, 0, rows, halve_rows), -1, cols, halve_cols), w)) continue;
      if (c.shape == shape) {
        ++shared_hits_;
        return {base, {}, {}};
      }
      ++slice_hits_;
      if (!halve_rows && !halve_cols) return {base, {rows, cols}, {}};
      return {base, {rows, cols}, {halve_rows ? 1 : 0, halve_cols ? 1 : 0}};
    }
  }
  const std::string stored = add(name, w);
  if (std::find(weights_.begin(), weights_.end(), stored) == weights_.end())
    weights_.push_back(stored);
  return {stored, {}, {}};
}

namespace {

// a branch reading "input" (NHWC) and writing "logits"
Branch empty_branch(const std::string& name) {
  Branch b;
  b.name = name;
  b.input = "input";
  b.output = "logits";
  return b;
}

// global average pool, then the linear classifier "fc"
void classifier(Builder& g, const compress::StateDict& s, const std::string& x) {
  auto pooled = g.node("global_avg_pool", {x}, "pool");
  g.linear(pooled, get(s, "fc.weight"), get(s, "fc.bias"));
}

}  // namespace

Branch lower_resnet(const trainer::ResNetSpec& spec, const compress::StateDict& s,
                    const std::string& branch_name, TensorStore& store) {
  Branch b = empty_branch(branch_name);
  Builder g(b, store, branch_name + "/");
  auto x =
      g.conv("input", "stem", fold(s, "stem.conv", "stem.bn"), {1, 1}, same_pad(3, 3), 1, "relu");
  for (size_t st = 0; st < spec.stages.size(); ++st)
    for (size_t bi = 0; bi < spec.stages[st].size(); ++bi) {
      const auto& blk = spec.stages[st][bi];
      const auto name = "stages." + std::to_string(st) + "." + std::to_string(bi);
      auto y = lower_slot(g, s, x, name + ".conv1", blk.conv1, blk.stride, name + ".bn1", "relu");
      y = lower_slot(g, s, y, name + ".conv2", blk.conv2, 1, name + ".bn2", "none");
      auto shortcut = x;
      if (blk.has_shortcut_conv())
        shortcut =
            g.conv(x, name + ".shortcut", fold(s, name + ".shortcut.conv", name + ".shortcut.bn"),
                   {blk.stride, blk.stride}, {0, 0, 0, 0}, 1, "none");
      x = g.node("add", {y, shortcut}, name + ".add", Attrs().set("activation", "relu"));
    }
  classifier(g, s, x);
  return b;
}

Branch lower_mobilenetv2(const trainer::MobileNetV2Spec& spec, const compress::StateDict& s,
                         const std::string& branch_name, TensorStore& store) {
  Branch b = empty_branch(branch_name);
  Builder g(b, store, branch_name + "/");
  auto x =
      g.conv("input", "stem", fold(s, "stem.conv", "stem.bn"), {1, 1}, same_pad(3, 3), 1, "relu6");
  for (size_t st = 0; st < spec.stages.size(); ++st)
    for (size_t bi = 0; bi < spec.stages[st].size(); ++bi) {
      const auto& blk = spec.stages[st][bi];
      const auto name = "stages." + std::to_string(st) + "." + std::to_string(bi);
      // a 1x1 and its BN; low-rank factored: the reduce 1x1 first, unnormalized
      auto pointwise = [&](std::string in, const std::string& layer, int64_t rank,
                           const char* activation) {
        if (rank)
          in = g.conv(in, layer + ".reduce", plain(s, layer + ".reduce"), {1, 1}, {0, 0, 0, 0}, 1,
                      "none");
        return g.conv(in, layer, fold(s, layer + ".conv", layer + ".bn"), {1, 1}, {0, 0, 0, 0}, 1,
                      activation);
      };
      auto y = x;
      if (blk.expand) y = pointwise(y, name + ".expand", blk.expand_rank, "relu6");
      y = g.conv(y, name + ".depthwise", fold(s, name + ".depthwise.conv", name + ".depthwise.bn"),
                 {blk.stride, blk.stride}, same_pad(3, 3), blk.hidden, "relu6");
      // the linear bottleneck: no activation after the projection, nor after the addition
      y = pointwise(y, name + ".project", blk.project_rank, "none");
      x = blk.residual() ? g.node("add", {y, x}, name + ".add", Attrs().set("activation", "none"))
                         : y;
    }
  classifier(g, s, x);
  return b;
}

namespace {
// the family a branch's spec names, one the exporter lowers; throws ConfigError otherwise
std::string exported_architecture(const std::string& spec_json, const std::string& branch_name) {
  const auto arch = trainer::spec_architecture(spec_json);
  if (arch != "mobilenetv2" && arch != "resnet")
    throw trainer::ConfigError("export: branch " + branch_name + " has no model the exporter " +
                               "lowers (" + (arch.empty() ? "no architecture" : arch) + ")");
  return arch;
}
}  // namespace

Branch lower_model(const std::string& spec_json, const compress::StateDict& state,
                   const std::string& branch_name, TensorStore& store) {
  if (exported_architecture(spec_json, branch_name) == "mobilenetv2")
    return lower_mobilenetv2(trainer::MobileNetV2Spec::from_json(spec_json), state, branch_name,
                             store);
  return lower_resnet(trainer::ResNetSpec::from_json(spec_json), state, branch_name, store);
}

std::shared_ptr<trainer::Backbone> build_model(const std::string& spec_json,
                                               const compress::StateDict& state,
                                               const std::string& branch_name) {
  exported_architecture(spec_json, branch_name);  // names the branch when it is neither family
  auto model = trainer::backbone_from_spec(spec_json);
  trainer::load_module_state(*model, state, "branch " + branch_name);
  model->eval();
  return model;
}

}  // namespace adascale::exporter
