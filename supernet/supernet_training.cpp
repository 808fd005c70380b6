#include "supernet/supernet_training.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <random>

#include "compress/channel_pruning.h"
#include "models/mobilenetv2_compression.h"
#include "supernet/detail.h"
#include "supernet/mobilenetv2_supernet.h"
#include "supernet/supernet.h"
#include "supernet/supernet_run.h"
#include "trainer/data_parallel.h"
#include "trainer/epoch_loop.h"
#include "trainer/progress.h"

namespace adascale::trainer {

using namespace supernet_detail;
using nlohmann::json;
namespace F = torch::nn::functional;
namespace fs = std::filesystem;

namespace {

// rank 0's whole state (weights, variants, every branch's BN statistics) on every rank
void share_full_state(MultiBranchNetwork& net, const std::string& origin) {
  RankGroup* group = current_group();
  if (!group || group->world() == 1) return;
  auto state = net.full_state();
  group->broadcast_state(state);
  net.load_full_state(state, origin);
}

// the squeeze channels of every fire slot in importance order (|BN scale| times the L1 norm of
// the expand weights that read the channel): distillation leaves them in no order, and a narrow
// branch keeps the leading ones
void order_fire_squeezes(CompressedResNet& model) {
  for (size_t s = 0; s < model.spec.stages.size(); ++s)
    for (size_t k = 0; k < model.spec.stages[s].size(); ++k)
      for (const char* slot : {".conv1", ".conv2"}) {
        const std::string p = block_prefix(s, k) + slot;
        if (!model.state.count(p + ".squeeze.weight")) continue;
        auto& st = model.state;
        const auto use = st.at(p + ".expand1.weight").abs().sum({0, 2, 3}) +
                         st.at(p + ".expand3.weight").abs().sum({0, 2, 3});
        const auto order = torch::argsort(st.at(p + ".squeeze_bn.weight").abs() * use, 0, true);
        for (const char* t : {".squeeze.weight", ".squeeze_bn.weight", ".squeeze_bn.bias",
                              ".squeeze_bn.running_mean", ".squeeze_bn.running_var"})
          st[p + t] = st.at(p + t).index_select(0, order).contiguous();
        for (const char* t : {".expand1.weight", ".expand3.weight"})
          st[p + t] = st.at(p + t).index_select(1, order).contiguous();
      }
}

// the branches of supernet.every_step, checked: full-depth, neither the largest nor the smallest
std::vector<size_t> every_step_branches(const MultiBranchNetwork& net, const std::string& names) {
  std::vector<size_t> out;
  for (const auto& name : split_list(names)) {
    const int b = net.space().find(name);
    auto fail = [&](const std::string& why) {
      throw ConfigError("supernet.every_step: '" + name + "' " + why);
    };
    if (b < 0) fail("is not a branch of the space");
    if (net.is_early_exit(b))
      fail("is an early exit; exits train in the passes of their full-depth branch");
    if (static_cast<size_t>(b) == net.largest() || static_cast<size_t>(b) == net.smallest())
      fail("is the largest or the smallest branch, which train in every step anyway");
    if (std::find(out.begin(), out.end(), static_cast<size_t>(b)) != out.end())
      fail("is named twice");
    out.push_back(b);
  }
  return out;
}

void check_backbone(const std::string& path, Backbone& base, const std::vector<int64_t>& chw,
                    int64_t classes) {
  const Checkpoint ck = read_checkpoint(path);
  if (ck.input_shape != chw || static_cast<int64_t>(ck.class_names.size()) != classes)
    throw ConfigError("supernet.backbone '" + path +
                      "' was trained on another input shape or class count");
  // compared as the model the spec builds describes itself (a spec written by an older version may
  // spell defaults differently); a checkpoint of the other family, or a multi-branch one, is a
  // different architecture too
  std::string stored;
  try {
    stored = backbone_from_spec(ck.spec)->spec_json();
  } catch (const ConfigError&) {
  }
  if (stored != base.spec_json())
    throw ConfigError("supernet.backbone '" + path + "' is a different architecture (" +
                      ck.architecture + ") from the config's model (" + base.describe() + ")");
}

// 1. backbone warm-up: an ordinary training run of the full network, resumable on its own in
// out/backbone/; false when stop_after ends the invocation inside it
bool warm_up(Run& run, bool resume, int64_t stop_after) {
  const auto& config = run.config;
  const auto& sc = config.supernet;
  const auto t0 = std::chrono::steady_clock::now();
  int64_t images = 0;
  run.backbone_path = sc.backbone;
  if (run.backbone_path.empty()) {
    run.log << "phase 1/5: backbone warm-up, " << config.train.epochs << " epochs\n";
    TrainConfig warm = config;
    warm.supernet = SupernetConfig{};
    // continue: the warm-up runs the first epochs of one cosine over warm-up + joint epochs
    if (sc.joint_schedule == "continue")
      warm.train.schedule_epochs = config.train.epochs + sc.joint_epochs;
    warm.out_dir = (fs::path(config.out_dir) / "backbone").string();
    warm.source = config.source + " (backbone warm-up)";
    const int64_t warm_stop = stop_after > 0 && stop_after < config.train.epochs ? stop_after : 0;
    auto outcome = train(warm, resume, run.log, warm_stop);
    if (warm_stop > 0) return false;
    run.backbone_path = outcome.checkpoint_path;
    run.backbone_accuracy = outcome.test.accuracy;
    // the whole warm-up's images, whichever invocation trained them
    images = config.train.epochs * static_cast<int64_t>(run.rd.split.train.size());
  } else {
    run.log << "phase 1/5: backbone from " << run.backbone_path << "\n";
  }
  // with ranks, rank 0 reads the backbone (it wrote it) and the others receive its weights
  if (current_rank() == 0) {
    const Checkpoint ck = read_checkpoint(run.backbone_path);
    load_module_state(run.net->base(), ck.tensors, run.backbone_path);
    if (run.backbone_accuracy < 0) run.backbone_accuracy = ck.test_accuracy;
  }
  broadcast_module(run.net->base());
  run.phase_done("warm-up", t0, images);
  return true;
}

// the ResNet's operator variants from its importance-ordered weights: SVD factors, distilled
// substitutions
void init_operator_variants(Run& run, Supernet& net, const CompressedResNet& full) {
  const auto& sc = run.config.supernet;
  const auto& space = net.space();
  for (const auto& op : space.ops) {
    switch (op.kind) {
      case OperatorKind::kLowRank:
        net.load_variant(op.name(), lowrank_resnet(full, op.amount, space.op_stages).state);
        break;
      case OperatorKind::kDpConv:
      case OperatorKind::kFire: {
        compress::DistillOptions d;
        d.steps = sc.distill_steps;
        d.seed = run.config.train.seed;
        auto sub = substitute_resnet(full, op.kind_name(), kFireDefaultSqueeze, space.op_stages,
                                     run.cal, d, &run.log);
        if (op.kind == OperatorKind::kFire) order_fire_squeezes(sub);
        net.load_variant(op.name(), sub.state);
        break;
      }
      case OperatorKind::kConv:
      case OperatorKind::kPrune:
        break;
    }
  }
}

// 2. variant initialisation: importance order, then the operators' variants
void init_variants(Run& run) {
  auto& net = *run.net;
  const auto t0 = std::chrono::steady_clock::now();
  run.log << "phase 2/5: variant initialisation (importance order, SVD, distillation)\n";
  // a width slice keeps the leading channels of every group
  auto state = module_state(net.base());
  for (const auto& group : net.channel_groups())
    compress::select_channels(state, group,
                              compress::importance_order(compress::channel_importance(
                                  group, state, compress::Importance::kFilterL1)));
  load_module_state(net.base(), state, "importance-ordered backbone");
  if (auto* resnet = dynamic_cast<Supernet*>(&net)) {
    init_operator_variants(run, *resnet, {resnet->base_spec(), state});
  } else {
    // a MobileNetV2's low-rank variants: the SVD factors of its ordered 1x1 convolutions
    auto& mobilenet = dynamic_cast<MobileNetV2Supernet&>(net);
    for (const auto& op : net.space().ops)
      if (op.kind == OperatorKind::kLowRank)
        mobilenet.load_variant(op.name(), lowrank_mobilenetv2({mobilenet.base_spec(), state},
                                                              op.amount, net.space().op_stages)
                                              .state);
  }
  net.reset_private_bn();
  net.reset_exit_blocks();
  share_full_state(net, "rank 0's initialised variants");
  run.phase_done("variant-init", t0, 0);
}

// 4. BN recalibration: every branch gets its own statistics; then the early-exit classifiers
void recalibrate_all(Run& run) {
  auto& net = *run.net;
  const auto t0 = std::chrono::steady_clock::now();
  run.log << "phase 4/5: BN recalibration of " << net.branch_count() << " branches on "
          << run.cal.size(0)
          << " images, then early-exit classifiers fitted (labels and the largest branch)\n";
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < net.branch_count(); ++b) recalibrate_branch(net, b, run.cal);
  // labels and the largest branch's answers weigh equally (whatever the joint phase used);
  // classifiers trained jointly are refitted too: a linear head learns slowly by SGD, and the
  // refit on recalibrated BN statistics measurably helps exit blocks as well
  net.fit_exit_heads(run.cal, run.cal_labels, 0.5);
  // every rank computed the same statistics and heads from the same weights and sample: checked
  require_same_state("the branches' BN statistics and exit heads", net.full_state());
  run.phase_done("bn-recalibration", t0, 0);
}

// 5. test evaluation of every branch, physically materialized; the largest's accuracy
double evaluate_all(Run& run, json* branches) {
  auto& net = *run.net;
  const auto t0 = std::chrono::steady_clock::now();
  run.log << "phase 5/5: test evaluation\n";
  data::BatchLoader test_loader(run.rd.test, data::all_indices(run.rd.test->size()),
                                eval_options(run.config.data, run.rd.stats));
  run.log << std::left << std::setw(34) << "branch" << std::right << std::setw(10) << "params"
          << std::setw(10) << "M MACs" << std::setw(10) << "test acc\n";
  double largest = 0;
  for (size_t b = 0; b < net.branch_count(); ++b) {
    const auto e = evaluate_branch(net, b, test_loader, run.classes, run.chw);
    const auto& c = net.branch(b);
    run.log << std::left << std::setw(34) << c.name << std::right << std::setw(10) << e.params
            << std::setw(10) << std::fixed << std::setprecision(2) << e.macs / 1e6 << std::setw(9)
            << 100.0 * e.accuracy << "%\n";
    branches->push_back({{"name", c.name},
                         {"width", c.width},
                         {"op", c.op.kind_name()},
                         {"depth", c.depth.full() ? "full" : c.depth.name()},
                         {"exit", c.exit_stage + 1},
                         {"params", e.params},
                         {"macs", e.macs},
                         {"accuracy", e.accuracy}});
    if (b == net.largest()) largest = e.accuracy;
  }
  run.phase_done("test-evaluation", t0, 0);
  return largest;
}

void log_branch_space(const Run& run) {
  const auto& net = *run.net;
  const auto& sc = run.config.supernet;
  run.log << "branch space: " << net.branch_count()
          << " branches (widths x ops x depths x exits), from " << std::fixed
          << std::setprecision(2) << net.branch_macs(net.smallest()) / 1e6 << " to "
          << net.branch_macs(net.largest()) / 1e6 << " M MACs\n";
  for (size_t b = 0; b < net.branch_count(); ++b)
    run.log << "  " << std::left << std::setw(34) << net.branch(b).name << std::right
            << std::setw(8) << net.branch_macs(b) / 1e6 << " M MACs\n";
  const auto& p = net.space().precisions;
  if (std::find(p.begin(), p.end(), "int8") != p.end())
    run.log << "precision int8: each branch also has an int8 twin, derived from it when "
               "evaluated or exported (calibration on "
            << sc.qat_images << " training images, then the QAT phase: " << sc.qat_steps
            << " fake-quant fine-tuning steps of the twin's own weights)\n";
}

}  // namespace

TrainOutcome train_supernet(const TrainConfig& config, std::ostream& log, bool resume,
                            int64_t stop_after) {
  config.validate();
  const auto total_t0 = std::chrono::steady_clock::now();
  torch::set_num_threads(config.train.threads);
  Run run{config, log, load_run_data(config)};
  require_same_run(config, run.rd);
  RankGroup* group = current_group();
  const bool leader = current_rank() == 0;
  const auto shape = run.rd.train->shape();
  run.chw = {shape.channels, shape.height, shape.width};
  run.classes = run.rd.train->num_classes();
  const auto& sc = config.supernet;

  // everything the user can get wrong is checked before the first step
  torch::manual_seed(config.train.seed);
  run.net =
      multi_branch_from_config(config, shape.channels, shape.height, shape.width, run.classes);
  if (!sc.backbone.empty()) check_backbone(sc.backbone, run.net->base(), run.chw, run.classes);
  run.every_step = every_step_branches(*run.net, sc.every_step);
  ensure_writable_dir(config.out_dir);
  run.joint_path = (fs::path(config.out_dir) / "joint" / kCheckpointName).string();
  log_branch_space(run);
  std::tie(run.cal, run.cal_labels) =
      calibration_sample(run.rd, sc.calibration_images, config.train.seed, run.rd.stats);

  TrainOutcome outcome;
  outcome.checkpoint_path = (fs::path(config.out_dir) / kCheckpointName).string();
  // a resumed run past the warm-up restarts from the joint phase's last checkpoint, which holds
  // the initialised variants, the weights, the optimizer and the phases so far
  int64_t joint_done = 0, joint_images = 0;
  std::string optimizer_state;
  // with ranks, rank 0's checkpoints decide (it alone writes them)
  bool resume_joint = resume && leader && fs::exists(run.joint_path);
  if (group) resume_joint = group->share("resume joint", resume_joint ? "1" : "0") == "1";
  if (resume_joint) {
    Checkpoint prev;
    if (leader) {
      prev = read_checkpoint(run.joint_path);
      check_resumable(prev, config, run.joint_path);
      run.net->load_full_state(prev.tensors, run.joint_path);
    }
    share_full_state(*run.net, run.joint_path);
    if (group) {
      prev.spec = group->share("joint spec", prev.spec);
      prev.epoch = std::stoll(group->share("joint epoch", std::to_string(prev.epoch)));
      prev.optimizer_archive = group->share("joint optimizer", prev.optimizer_archive);
    }
    const json progress = json::parse(prev.spec).value("training", json::object());
    run.phases = progress.value("phases", json::array());
    run.backbone_path = progress.value("backbone", std::string());
    run.backbone_accuracy = progress.value("backbone_accuracy", -1.0);
    joint_images = progress.value("joint_images", int64_t{0});
    run.grads_defined = progress.value("grads_defined", std::vector<int64_t>{});
    joint_done = prev.epoch;
    optimizer_state = prev.optimizer_archive;
    log << "resuming the joint phase from " << run.joint_path << " after joint epoch " << joint_done
        << "\n";
  } else {
    if (!warm_up(run, resume, stop_after)) {
      outcome.checkpoint_path = (fs::path(config.out_dir) / "backbone" / kCheckpointName).string();
      return outcome;
    }
    init_variants(run);
  }
  // --stop-after counts the run's epochs: the warm-up's (when it warms up), then the joint ones
  const int64_t warm_epochs = sc.backbone.empty() ? config.train.epochs : 0;
  const int64_t joint_end = stop_after > 0
                                ? std::clamp<int64_t>(stop_after - warm_epochs, 0, sc.joint_epochs)
                                : sc.joint_epochs;
  const int64_t end = std::max(joint_done, joint_end);
  if (joint_done < sc.joint_epochs &&
      !joint_phase(run, joint_done, end, optimizer_state, &joint_images)) {
    outcome.checkpoint_path = run.joint_path;
    outcome.epochs_run = end - joint_done;
    log << "stopped after joint epoch " << end << " of " << sc.joint_epochs
        << "; continue with --resume\n";
    return outcome;
  }
  if (joint_done == sc.joint_epochs)  // stopped after the joint phase's last checkpoint
    run.phases.push_back({{"phase", "joint"}, {"seconds", 0.0}, {"images", joint_images}});
  recalibrate_all(run);
  if (!leader) return outcome;  // rank 0 evaluates and writes the result
  json branches = json::array();
  outcome.test.accuracy = evaluate_all(run, &branches);

  const double total = seconds_since(total_t0);
  int64_t train_images = 0;
  for (const auto& p : run.phases) train_images += p.at("images").get<int64_t>();
  json summary = {{"branches", branches},           {"phases", run.phases},
                  {"total_seconds", total},         {"train_images", train_images},
                  {"backbone", run.backbone_path},  {"backbone_accuracy", run.backbone_accuracy},
                  {"threads", config.train.threads}};
  run.net->set_extra_json(summary.dump());
  Checkpoint ck = run.checkpoint(sc.joint_epochs);
  ck.test_accuracy = outcome.test.accuracy;
  write_checkpoint(ck, outcome.checkpoint_path);
  write_text_atomic((fs::path(config.out_dir) / "summary.json").string(), summary.dump(2) + "\n");
  outcome.epochs_run = sc.joint_epochs - joint_done;
  outcome.train_seconds = total;
  log << "multi-branch training: " << format_duration(total) << " in total, " << train_images
      << " training images processed\n";
  return outcome;
}

}  // namespace adascale::trainer
