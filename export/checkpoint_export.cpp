#include "export/checkpoint_export.h"

#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "base/durable_file.h"
#include "runtime/graph.h"
#include "supernet/model_loading.h"
#include "trainer/training.h"

namespace adascale::exporter {

Int8Calibration int8_calibration(const trainer::TrainConfig& config,
                                 const trainer::Checkpoint& ckpt) {
  Int8Calibration s;
  const auto& sc = config.supernet;
  s.options.calibration_images = sc.qat_images;
  s.options.qat_steps = sc.qat_steps;
  s.options.shared_weights = sc.int8_weights == "shared";
  s.options.shared_max_loss = sc.int8_shared_max_loss;
  s.options.qat_lr = sc.qat_lr;
  s.options.percentile = sc.qat_percentile;
  s.options.seed = config.train.seed;
  const auto rd = trainer::load_run_data(config);
  std::tie(s.images, s.labels) = trainer::calibration_sample(
      rd, sc.qat_images, config.train.seed + 17, {ckpt.normalize_mean, ckpt.normalize_std});
  return s;
}

CheckpointSources sources_from_checkpoints(const std::vector<std::string>& paths,
                                           const std::string& branches,
                                           const std::string& precisions) {
  CheckpointSources out;
  for (const auto& path : paths) {
    auto ckpt = trainer::read_checkpoint(path);
    if (out.sources.empty()) {
      out.first = ckpt;
    } else if (ckpt.input_shape != out.first.input_shape ||
               ckpt.class_names != out.first.class_names ||
               ckpt.normalize_mean != out.first.normalize_mean) {
      throw trainer::ConfigError(path + ": input shape, classes or normalization differ from " +
                                 paths.front());
    }
    if (trainer::is_multi_branch_spec(ckpt.spec)) {
      const auto net = trainer::load_supernet(ckpt, path);
      const auto wanted =
          trainer::parse_precisions(precisions, net->space().precisions, "--precisions");
      for (const auto& ref :
           trainer::select_branches(net->space(), branches.empty() ? "all" : branches, wanted)) {
        auto m = net->materialize(ref.branch);
        out.sources.push_back({ref.name, m.spec_json, m.state, ref.int8});
      }
      continue;
    }
    if (!branches.empty() && branches != "all")
      throw trainer::ConfigError("--branches needs a multi-branch checkpoint; " + path + " holds " +
                                 ckpt.architecture);
    const auto config = trainer::parse_config_text(ckpt.config_ini, path + " (stored config)");
    if (config.model.arch != "resnet" && config.model.arch != "mobilenetv2")
      throw trainer::ConfigError(path + ": export supports resnet and mobilenetv2 checkpoints, " +
                                 "this is " + ckpt.architecture);
    // loaded once to check that the weights fit the spec (an older mobilenetv2 checkpoint has
    // none: its config describes it)
    const auto model = trainer::load_model(ckpt, path);
    const std::string name = ckpt.lineage.empty() ? "backbone" : ckpt.lineage;
    for (const auto& p : trainer::parse_precisions(precisions, {"fp32"}, "--precisions"))
      out.sources.push_back({name + (p == "int8" ? ">int8" : ""), model->spec_json(),
                             trainer::module_state(*model), p == "int8"});
  }
  out.config = trainer::parse_config_text(out.first.config_ini, paths.front());
  return out;
}

std::pair<torch::Tensor, torch::Tensor> held_out_images(const trainer::TrainConfig& config,
                                                        const trainer::Checkpoint& ckpt) {
  const auto data = trainer::held_out_data(config, ckpt);
  data::BatchLoader loader(data.set, data::all_indices(data.set->size()), data.options);
  std::vector<torch::Tensor> xs, ys;
  loader.start_epoch(0);
  while (auto b = loader.next()) {
    xs.push_back(b->images);
    ys.push_back(b->labels);
  }
  return {torch::cat(xs), torch::cat(ys)};
}

ExportResult export_pareto_bundle(const std::vector<ExportSource>& sources,
                                  const torch::Tensor& images, const torch::Tensor& labels,
                                  const std::string& out_path, const ExportOptions& options,
                                  std::ostream& log) {
  const std::string candidates = base::unique_temp_path(out_path, "candidates");
  log << "pareto: profiling all " << sources.size() << " candidates first\n";
  ExportResult all;
  try {
    all = export_bundle(sources, images, labels, candidates, options, log);
  } catch (...) {
    std::filesystem::remove_all(candidates);
    throw;
  }
  std::filesystem::remove_all(candidates);
  std::vector<ExportSource> front;
  for (const auto& r : all.branches)
    if (r.pareto)
      for (const auto& s : sources)
        if (s.name == r.name) front.push_back(s);
  // an int8 twin with shared weights needs its fp32 source in the bundle to name its tensors;
  // it stores its own where the source is absent, so the front exports as it is
  log << "pareto: " << front.size() << " of " << sources.size()
      << " branches on the front of measured latency vs held-out accuracy\n";
  return export_bundle(front, images, labels, out_path, options, log);
}

Int8TwinMeasure measure_int8_twin(const trainer::MultiBranchNetwork& net,
                                  const trainer::BranchRef& ref, const Int8Calibration& calibration,
                                  data::BatchLoader& loader) {
  const auto m = net.materialize(ref.branch);
  BundleWriter int8_tensors;
  TensorStore int8_store(int8_tensors);
  std::ostringstream log;
  const auto twin = make_int8_twin(m.spec_json, m.state, ref.name, calibration.images,
                                   calibration.labels, calibration.options, int8_store, log);
  // what the prepared twin holds (int8 weights derived from shared ones included)
  DerivedWeights derived;
  const Status s = derive_weights(twin.graph, int8_tensors.constants(), false, &derived);
  if (!s.ok()) throw std::runtime_error("int8 twin " + ref.name + ": " + s.message);
  Int8TwinMeasure out;
  out.weight_bytes = used_weight_bytes(derived);
  torch::NoGradGuard no_grad;
  int64_t correct = 0, total = 0;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    correct +=
        twin.model->forward(batch->images, true).argmax(1).eq(batch->labels).sum().item<int64_t>();
    total += batch->labels.size(0);
  }
  out.accuracy = total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0;
  return out;
}

}  // namespace adascale::exporter
