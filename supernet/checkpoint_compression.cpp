#include "supernet/checkpoint_compression.h"

#include <algorithm>
#include <filesystem>

#include "base/durable_file.h"
#include "models/mobilenetv2_compression.h"
#include "models/module_state.h"
#include "supernet/model_loading.h"
#include "supernet/multi_branch_network.h"
#include "supernet/operator.h"
#include "trainer/training.h"

namespace adascale::trainer {

namespace {

// a MobileNetV2's 3x3 convolutions are depthwise already: pruning cuts its expansion channels and
// lowrank factors its 1x1 convolutions, the ResNet operators that replace 3x3 convolutions have
// nothing to act on; an operator's stages must exist, a prune's must expand, and a 1x1 is
// factored once
void check_mobilenetv2_ops(const std::vector<Operator>& ops, const MobileNetV2Spec& spec,
                           const std::string& checkpoint) {
  std::vector<bool> factored(spec.stages.size(), false);
  for (size_t s = 0; s < spec.stages.size(); ++s)
    for (const auto& b : spec.stages[s])
      factored[s] = factored[s] || b.expand_rank || b.project_rank;
  for (const auto& op : ops) {
    if (op.kind != OperatorKind::kPrune && op.kind != OperatorKind::kLowRank)
      throw ConfigError(checkpoint + ": --ops " + op.canonical() +
                        " does not apply to a mobilenetv2: it replaces 3x3 convolutions, and a " +
                        "mobilenetv2's are depthwise already");
    const auto stages = operator_stages(op, spec.stages.size());
    for (int64_t s : stages) {
      const auto where =
          checkpoint + ": --ops " + op.canonical() + ": stage " + std::to_string(s + 1);
      if (s >= static_cast<int64_t>(spec.stages.size()))
        throw ConfigError(where + " does not exist (the network has " +
                          std::to_string(spec.stages.size()) + " stages)");
      const auto& blocks = spec.stages[static_cast<size_t>(s)];
      if (op.kind == OperatorKind::kLowRank) {
        if (factored[s]) throw ConfigError(where + " has low-rank factors already");
        factored[s] = true;
      } else if (!op.stages.empty() && std::none_of(blocks.begin(), blocks.end(),
                                                    [](const auto& b) { return b.expand; })) {
        throw ConfigError(where + " has no expansion channels to prune");
      }
    }
  }
}

}  // namespace

CompressionOutcome compress_checkpoint(const CompressionRequest& r, std::ostream& log) {
  if (r.calibration < 16) throw ConfigError("--calibration needs at least 16 images");
  const auto ops = parse_compress_ops(r.ops);
  torch::set_num_threads(r.threads);
  auto ckpt = read_checkpoint(r.checkpoint);
  auto config = parse_config_text(ckpt.config_ini, r.checkpoint + " (stored config)");
  if (is_multi_branch_spec(ckpt.spec))
    throw ConfigError(r.checkpoint +
                      ": compression needs a single-model checkpoint, this is a multi-branch "
                      "network (export or evaluate its branches instead)");
  const std::string arch = ckpt.spec.empty() ? config.model.arch : spec_architecture(ckpt.spec);
  if (arch != "resnet" && arch != "mobilenetv2")
    throw ConfigError(r.checkpoint + ": compression needs a resnet or mobilenetv2 checkpoint, " +
                      "this is " + ckpt.architecture);
  auto model = load_model(ckpt, r.checkpoint);
  // the loaded model's own spec (a checkpoint without one is described by its config)
  const auto mobilenet = std::dynamic_pointer_cast<MobileNetV2>(model);
  const auto resnet = std::dynamic_pointer_cast<ResNet>(model);
  if (mobilenet)
    check_mobilenetv2_ops(ops, mobilenet->spec(), r.checkpoint);
  else
    check_resnet_operators(ops, r.checkpoint + ": ");

  // calibration images: a seeded sample of the training split, normalized, no augmentation
  auto rd = load_run_data(config);
  auto cal = calibration_images(rd, r.calibration, config.train.seed,
                                {ckpt.normalize_mean, ckpt.normalize_std});
  const auto held_out = held_out_data(config, ckpt);
  const auto shape = held_out.set->shape();
  CompressionOutcome out;
  double loss = -1;
  auto measure = [&](Backbone& m, double* accuracy, ModelCost* cost) {
    data::BatchLoader loader(held_out.set, data::all_indices(held_out.set->size()),
                             held_out.options);
    const auto e = evaluate(m, loader, held_out.set->num_classes());
    *accuracy = e.accuracy;
    loss = e.loss;
    *cost = measure_cost(m, shape.channels, shape.height, shape.width);
  };
  measure(*model, &out.before_accuracy, &out.before);
  std::shared_ptr<Backbone> compressed;
  if (mobilenet) {
    CompressedMobileNetV2 m{mobilenet->spec(), ckpt.tensors};
    for (const auto& op : ops) {
      const auto stages = operator_stages(op, m.spec.stages.size());
      if (op.kind == OperatorKind::kLowRank) {
        log << "applying " << op.canonical() << " to the 1x1 convolutions\n";
        m = lowrank_mobilenetv2(m, op.amount, stages);
      } else {
        log << "applying " << op.canonical() << " to the expansion channels\n";
        m = prune_mobilenetv2(m, op.amount, stages);
      }
    }
    auto net = std::make_shared<MobileNetV2>(m.spec);
    load_module_state(*net, m.state, "compressed model");
    compressed = net;
  } else {
    CompressedResNet input{resnet->spec(), ckpt.tensors};
    auto result = apply_operators(input, ops, cal, &log);
    auto net = std::make_shared<ResNet>(result.spec);
    load_module_state(*net, result.state, "compressed model");
    compressed = net;
  }
  recalibrate_batchnorm(*compressed, cal);
  compressed->eval();
  measure(*compressed, &out.after_accuracy, &out.after);

  Checkpoint written = ckpt;
  written.spec = compressed->spec_json();
  written.lineage = (ckpt.lineage.empty() ? "" : ckpt.lineage + ">") + canonical_ops_name(ops);
  written.architecture = compressed->describe();
  written.tensors = module_state(*compressed);
  written.optimizer_archive.clear();
  written.test_accuracy = out.after_accuracy;
  written.test_loss = loss;
  write_checkpoint(written, r.out);
  out.architecture = written.architecture;
  if (r.finetune_epochs > 0) {
    // fine-tune from the compressed weights with the original recipe at a lower rate, then put
    // the result where the compressed checkpoint was (atomically)
    auto ft = config;
    ft.model.init = r.out;
    ft.train.epochs = r.finetune_epochs;
    ft.train.lr = r.finetune_lr > 0 ? r.finetune_lr : 0.1 * config.train.lr;
    ft.train.warmup_epochs = 0;
    ft.train.threads = r.threads;
    ft.out_dir = r.out + ".finetune";
    ft.source = "fine-tuning of " + r.out;
    log << "fine-tuning " << r.finetune_epochs << " epochs at lr " << ft.train.lr << "\n";
    auto outcome = train(ft, false, log);
    std::string error;
    if (!base::fsync_path(outcome.checkpoint_path, &error) ||
        !base::replace_path(outcome.checkpoint_path, r.out, &error))
      throw std::runtime_error(error);
    std::filesystem::remove_all(ft.out_dir);
    auto tuned = read_checkpoint(r.out);
    measure(*load_model(tuned, r.out), &out.after_accuracy, &out.after);
  }
  return out;
}

}  // namespace adascale::trainer
