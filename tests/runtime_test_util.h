// Shared fixtures for the runtime tests: random tensors and a small multi-branch model.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "runtime/bundle.h"

namespace adascale::testing {

// Set by CTest in cross builds (tests/CMakeLists.txt): the tests run under qemu-user, which has no
// PR_SET_CHILD_SUBREAPER and does not enforce RLIMIT_AS on the emulated program.
inline bool under_emulator() { return std::getenv("ADASCALE_UNDER_EMULATOR") != nullptr; }

inline std::vector<float> random_floats(std::mt19937& rng, size_t count, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(count);
  for (float& v : values) v = dist(rng);
  return values;
}

inline std::vector<int8_t> random_int8(std::mt19937& rng, size_t count, int lo = -127,
                                       int hi = 127) {
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<int8_t> values(count);
  for (int8_t& v : values) v = static_cast<int8_t>(dist(rng));
  return values;
}

// a file in this process's scratch folder; the folder goes away when the process exits
inline std::string temp_path(const std::string& name) {
  struct Scratch {
    std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("adascale_rt_" + std::to_string(::getpid()));
    ~Scratch() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  };
  static Scratch scratch;
  std::filesystem::create_directories(scratch.dir);
  return (scratch.dir / name).string();
}

inline Node make_node(const std::string& op, std::vector<std::string> inputs, std::string output,
                      std::map<std::string, std::string> params = {}, Attrs attrs = {}) {
  Node node;
  node.op = op;
  node.inputs = std::move(inputs);
  node.output = std::move(output);
  node.params = std::move(params);
  node.attrs = std::move(attrs);
  return node;
}

// the nodes of a tiny classifier branch: 3x3 conv (+ReLU, "same" padding) on "input", global
// pool, flatten, fully connected to "logits"; conv_bias may be empty
inline std::vector<Node> small_classifier(const std::string& conv_weight,
                                          const std::string& conv_bias,
                                          const std::string& fc_weight) {
  std::map<std::string, std::string> conv_params{{"weight", conv_weight}};
  if (!conv_bias.empty()) conv_params["bias"] = conv_bias;
  return {make_node("conv2d", {"input"}, "c", conv_params,
                    Attrs()
                        .set("kernel", std::vector<int64_t>{3, 3})
                        .set("pad", std::vector<int64_t>{1, 1, 1, 1})
                        .set("activation", "relu")),
          make_node("global_avg_pool", {"c"}, "gap"), make_node("flatten", {"gap"}, "flat"),
          make_node("fully_connected", {"flat"}, "logits", {{"weight", fc_weight}})};
}

// A bundle of branches that all run small_classifier over one set of weights (input 1x3x8x8, 5
// classes), branch i named names[i] with catalog costs costs_json[i]: fixtures for the loop's
// cost model, where only the costs differ. Writes `path` (replacing it) and returns it.
inline std::string write_same_graph_bundle(const std::string& path,
                                           const std::vector<std::string>& names,
                                           const std::vector<std::string>& costs_json) {
  BundleWriter writer;
  std::mt19937 rng(3);
  writer.set_input({1, 3, 8, 8}, {}, {});
  writer.set_classes({"a", "b", "c", "d", "e"});
  writer.add_f32("stem.w", {8, 3, 3, 3}, random_floats(rng, 8 * 27, -0.5f, 0.5f));
  writer.add_f32("fc.w", {5, 8}, random_floats(rng, 40, -1.0f, 1.0f));
  for (size_t i = 0; i < names.size(); ++i) {
    Branch b;
    b.name = names[i];
    b.output = "logits";
    b.costs_json = costs_json.at(i);
    b.nodes = small_classifier("stem.w", "", "fc.w");
    if (!writer.add_branch(b).ok()) return "";
  }
  std::filesystem::remove_all(path);
  return writer.write(path).ok() ? path : "";
}

constexpr int kClasses = 5;

// Input 1x3x8x8. Branches share the stem weights:
//  "full":  conv-bn-relu, conv, residual add+relu, max pool, global pool, flatten, fc, exit
//  "early": conv(relu) -> global pool -> flatten -> fc_early -> exit
//  "int8":  quantize -> int8 conv(relu) -> int8 global pool -> dequantize -> flatten -> fc
inline void build_small_model(BundleWriter* writer, uint32_t seed = 7) {
  std::mt19937 rng(seed);
  writer->set_model_name("tiny-resnet");
  writer->set_input({1, 3, 8, 8}, {0.5f, 0.4f, 0.3f}, {0.25f, 0.2f, 0.3f});
  writer->set_classes({"a", "b", "c", "d", "e"});
  writer->add_f32("stem.w", {8, 3, 3, 3}, random_floats(rng, 8 * 27, -0.5f, 0.5f));
  writer->add_f32("stem.b", {8}, random_floats(rng, 8, -0.1f, 0.1f));
  writer->add_f32("bn.scale", {8}, random_floats(rng, 8, 0.5f, 1.5f));
  writer->add_f32("bn.shift", {8}, random_floats(rng, 8, -0.2f, 0.2f));
  writer->add_f32("block.w", {8, 3, 3, 8}, random_floats(rng, 8 * 72, -0.2f, 0.2f));
  writer->add_f32("fc.w", {kClasses, 8}, random_floats(rng, kClasses * 8, -1.0f, 1.0f));
  writer->add_f32("fc.b", {kClasses}, random_floats(rng, kClasses, -0.1f, 0.1f));
  writer->add_f32("fc_early.w", {kClasses, 8}, random_floats(rng, kClasses * 8, -1.0f, 1.0f));
  writer->add_i8("stem.w.q", {8, 3, 3, 3}, random_int8(rng, 8 * 27));
  writer->add_f32("stem.w.scale", {8}, random_floats(rng, 8, 0.002f, 0.004f));
  writer->add_i32("stem.b.q", {8}, {10, -20, 30, 0, 5, -5, 100, -100});

  const Attrs conv3 = Attrs()
                          .set("kernel", std::vector<int64_t>{3, 3})
                          .set("stride", std::vector<int64_t>{1, 1})
                          .set("pad", std::vector<int64_t>{1, 1, 1, 1});
  Branch full;
  full.name = "full";
  full.output = "logits";
  full.costs_json = R"({"macs":12345,"params":1000,"latency_ms":{"median":0.1}})";
  full.nodes = {
      make_node("conv2d", {"input"}, "c1", {{"weight", "stem.w"}, {"bias", "stem.b"}}, conv3),
      make_node("batchnorm", {"c1"}, "bn", {{"scale", "bn.scale"}, {"shift", "bn.shift"}}),
      make_node("relu", {"bn"}, "r1"),
      make_node("conv2d", {"r1"}, "c2", {{"weight", "block.w"}}, conv3),
      make_node("add", {"r1", "c2"}, "res", {}, Attrs().set("activation", "relu")),
      make_node("max_pool2d", {"res"}, "mp", {},
                Attrs()
                    .set("pool", std::vector<int64_t>{2, 2})
                    .set("stride", std::vector<int64_t>{2, 2})),
      make_node("global_avg_pool", {"mp"}, "gap"),
      make_node("flatten", {"gap"}, "flat"),
      make_node("fully_connected", {"flat"}, "fc", {{"weight", "fc.w"}, {"bias", "fc.b"}}),
      make_node("exit", {"fc"}, "logits", {}, Attrs().set("head", "final")),
  };
  Branch early;
  early.name = "early";
  early.output = "logits";
  early.costs_json = R"({"macs":2000})";
  Attrs conv3_relu = conv3;
  conv3_relu.set("activation", "relu");
  early.nodes = {
      make_node("conv2d", {"input"}, "c1", {{"weight", "stem.w"}, {"bias", "stem.b"}}, conv3_relu),
      make_node("global_avg_pool", {"c1"}, "gap"),
      make_node("flatten", {"gap"}, "flat"),
      make_node("fully_connected", {"flat"}, "fc", {{"weight", "fc_early.w"}}),
      make_node("exit", {"fc"}, "logits", {}, Attrs().set("head", "early")),
  };
  Branch int8;
  int8.name = "int8";
  int8.output = "logits";
  Attrs qconv = conv3_relu;
  qconv.set("out_scale", 0.05).set("out_zero_point", -128.0);
  int8.nodes = {
      make_node("quantize", {"input"}, "q", {},
                Attrs().set("out_scale", 0.03).set("out_zero_point", 2.0)),
      make_node("conv2d", {"q"}, "c1",
                {{"weight", "stem.w.q"}, {"weight_scale", "stem.w.scale"}, {"bias", "stem.b.q"}},
                qconv),
      make_node("global_avg_pool", {"c1"}, "gap", {},
                Attrs().set("out_scale", 0.02).set("out_zero_point", -100.0)),
      make_node("dequantize", {"gap"}, "dq"),
      make_node("flatten", {"dq"}, "flat"),
      make_node("fully_connected", {"flat"}, "logits", {{"weight", "fc.w"}, {"bias", "fc.b"}}),
  };
  writer->add_branch(full);
  writer->add_branch(early);
  writer->add_branch(int8);
}

}  // namespace adascale::testing
