// Phase 3 of a multi-branch run: joint training by the sandwich rule with in-place distillation
// from the largest branch, on the trainer's epoch loop.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>

#include "supernet/detail.h"
#include "supernet/student_draw.h"
#include "supernet/supernet_run.h"
#include "supernet/supernet_training.h"
#include "trainer/data_parallel.h"
#include "trainer/device.h"
#include "trainer/epoch_loop.h"

namespace adascale::trainer::supernet_detail {

namespace F = torch::nn::functional;
namespace fs = std::filesystem;

namespace {

void log_joint_plan(const Run& run) {
  const auto& sc = run.config.supernet;
  std::string fixed_students;  // every_step's branches, as the log names them
  for (size_t b : run.every_step) fixed_students += run.net->branch(b).name + " + ";
  run.log << "phase 3/5: joint training, " << sc.joint_epochs << " epochs, largest + smallest + "
          << fixed_students << sc.sampled << " sampled branches per step"
          << (sc.student_batch < 1.0
                  ? " (students on " + std::to_string(static_cast<int>(100 * sc.student_batch)) +
                        "% of each batch)"
                  : std::string())
          << (sc.student_weight < 1.0 ? ", students' losses x" + fixed2(sc.student_weight)
                                      : std::string())
          << (sc.exit_weight > 0
                  ? ", early exits from the same passes at weight " + std::to_string(sc.exit_weight)
              : sc.exit_head == "block"
                  ? ", exit blocks trained on the detached features of the same passes"
                  : std::string())
          << (sc.depth_order == "progressive" && run.net->space().depths.size() > 1
                  ? ", full depth only in the first " + std::to_string(sc.joint_epochs / 2) +
                        " of them"
                  : std::string())
          << ", "
          << (sc.joint_schedule == "continue" ? "continuing the warm-up's cosine"
                                              : "cosine from " + std::to_string(sc.joint_lr))
          << "\n";
}

// the optimizer and schedule of the joint phase: restart runs its own cosine from joint_lr,
// continue picks up the warm-up's cosine where it stopped
OptimConfig joint_schedule(const TrainConfig& config) {
  const auto& sc = config.supernet;
  const bool continuous = sc.joint_schedule == "continue";
  OptimConfig jo = config.train;
  jo.epochs = sc.joint_epochs;
  jo.lr = continuous ? config.train.lr : sc.joint_lr;
  jo.warmup_epochs = continuous ? config.train.warmup_epochs : 0;
  jo.schedule_epochs = continuous ? config.train.epochs + sc.joint_epochs : 0;
  jo.schedule = "cosine";
  return jo;
}

std::unique_ptr<torch::optim::Optimizer> joint_optimizer(Run& run, const OptimConfig& jo,
                                                         const std::string& state) {
  auto optimizer = make_optimizer(jo, run.net->parameters());
  if (!state.empty()) deserialize_optimizer(*optimizer, state);
  auto params = run.net->parameters();
  for (int64_t i : run.grads_defined) {
    if (i < 0 || i >= static_cast<int64_t>(params.size()))
      throw CheckpointError(run.joint_path + ": a gradient of a missing parameter");
    params[i].mutable_grad() = torch::zeros_like(params[i]);
  }
  return optimizer;
}

// one step of the sandwich rule: the largest branch on the batch, then the students on their
// slices, distilled from its answers
class JointStep {
 public:
  JointStep(Run& run, torch::optim::Optimizer& optimizer, OptimConfig schedule,
            const data::BatchLoader& loader, torch::Device device, int64_t* joint_images)
      : run_(run),
        device_(device),
        loader_(loader),
        reducer_(make_reducer(run.net->parameters(), /*single_backward=*/false)),
        sc_(run.config.supernet),
        optimizer_(optimizer),
        schedule_(std::move(schedule)),
        steps_per_epoch_(loader.batches_per_epoch()),
        // continue: the warm-up ran the first train.epochs of the same schedule, same loader
        schedule_offset_(
            sc_.joint_schedule == "continue" ? run.config.train.epochs * steps_per_epoch_ : 0),
        ce_(F::CrossEntropyFuncOptions().label_smoothing(run.config.train.label_smoothing)),
        // exits join the passes of their trunk: with exit_weight > 0 their loss reaches the
        // trunk, otherwise exit blocks learn from its detached features (linear heads are
        // fitted later)
        joint_exits_(sc_.exit_weight > 0 || sc_.exit_head == "block"),
        detach_exits_(sc_.exit_weight == 0),
        exit_scale_(detach_exits_ ? 1.0 : sc_.exit_weight),
        student_threads_(sc_.student_threads > 0 ? sc_.student_threads : run.config.train.threads),
        draw_(*run.net, run.config, run.every_step),
        joint_images_(joint_images) {}

  const GradientReducer* reducer() const { return reducer_.get(); }

  StepResult operator()(const data::Batch& host_batch, const StepPosition& pos) {
    const data::Batch batch{to_device(host_batch.images, device_),
                            to_device(host_batch.labels, device_)};
    auto& net = *run_.net;
    const int64_t global = pos.global();
    const double lr = learning_rate(schedule_, schedule_offset_ + global, steps_per_epoch_);
    for (auto& g : optimizer_.param_groups()) g.options().set_lr(lr);
    optimizer_.zero_grad();
    auto teacher =
        joint_pass(net, net.largest(), batch.images, &exit_logits_, joint_exits_, detach_exits_);
    auto loss = F::cross_entropy(teacher, batch.labels, ce_);
    const double loss_value = loss.item<double>();
    pos.check_finite(loss_value, lr);
    soft_ = torch::softmax(teacher.detach(), 1);
    labels_ = batch.labels;
    const int64_t n = batch.labels.size(0);
    with_exit_losses(loss, exit_logits_, 0, n).backward();
    const auto students = draw_.students(pos.epoch, global);
    if (RankGroup* group = current_group()) {
      group->set_activity("joint epoch " + std::to_string(pos.epoch + 1) + ", step " +
                          std::to_string(pos.step + 1));
      // every rank must train the same branches: the draw is checked, not assumed
      int64_t drawn = 0;
      for (size_t b : students) drawn = drawn * 1000003 + static_cast<int64_t>(b) + 1;
      group->require_same_value("the branches drawn for the step", drawn);
      ++*checked_steps_;
    }
    // each student on its own slice of the batch (all of it at student_batch = 1)
    const int64_t m = std::clamp<int64_t>(
        static_cast<int64_t>(std::ceil(sc_.student_batch * static_cast<double>(n))), 1, n);
    std::vector<StudentPass> passes;
    for (size_t i = 0; i < students.size(); ++i)
      passes.push_back({students[i], std::min(static_cast<int64_t>(i) * m % n, n - m), m});
    student_backward(
        net, batch.images, passes,
        [&](const torch::Tensor& out, const std::vector<torch::Tensor>& exits, int64_t start,
            int64_t rows) {
          // (the exits' losses are not scaled)
          return with_exit_losses(sc_.student_weight * student_loss(out, start, rows), exits, start,
                                  rows);
        },
        joint_exits_, detach_exits_, student_threads_);
    const int64_t global_n = loader_.global_rows(pos.step);
    if (reducer_) reducer_->finish(static_cast<double>(n) / static_cast<double>(global_n));
    optimizer_.step();
    // images of every rank (each holds n of the batch's global_n rows)
    *joint_images_ += (n + m * static_cast<int64_t>(students.size())) * global_n / n;
    return StepResult{loss_value, teacher.argmax(1).eq(batch.labels).sum().item<int64_t>(), n};
  }

 private:
  // the mix of the students' loss, for a student or an early exit on rows [start, start+m)
  torch::Tensor student_loss(const torch::Tensor& out, int64_t start, int64_t m) const {
    const double w = sc_.distill_weight;
    auto part = [&](const torch::Tensor& t) { return t.slice(0, start, start + m); };
    auto l = w * -(part(soft_) * torch::log_softmax(out, 1)).sum(1).mean();
    if (w < 1.0) l = l + (1.0 - w) * F::cross_entropy(out, part(labels_), ce_);
    return l;
  }
  // a loss plus the losses of the exits that trained with it
  torch::Tensor with_exit_losses(torch::Tensor l, const std::vector<torch::Tensor>& exits,
                                 int64_t start, int64_t m) const {
    for (const auto& e : exits) l = l + exit_scale_ * student_loss(e, start, m);
    return l;
  }

  Run& run_;
  const torch::Device device_;
  const data::BatchLoader& loader_;
  std::unique_ptr<GradientReducer> reducer_;
  const SupernetConfig& sc_;
  torch::optim::Optimizer& optimizer_;
  const OptimConfig schedule_;
  const int64_t steps_per_epoch_, schedule_offset_;
  const F::CrossEntropyFuncOptions ce_;
  const bool joint_exits_, detach_exits_;
  const double exit_scale_;
  const int student_threads_;
  const StudentDraw draw_;
  int64_t* joint_images_;
  int64_t* checked_steps_ = &run_.checked_steps;
  std::vector<torch::Tensor> exit_logits_;  // the teacher's exits, when they train with it
  torch::Tensor soft_, labels_;             // of the current batch
};

// after a joint epoch: validation of the two extremes (after a quick BN recalibration on part of
// the calibration sample), the log line, the checkpoint
void end_joint_epoch(Run& run, const EpochResult& local, data::BatchLoader* val_loader,
                     int64_t val_images, const torch::optim::Optimizer& optimizer,
                     int64_t joint_images) {
  auto& net = *run.net;
  const EpochResult r = reduce_epoch(local);
  if (RankGroup* group = current_group()) {
    group->set_activity("validation after joint epoch " + std::to_string(r.epoch + 1));
    require_same_parameters("the weights after joint epoch " + std::to_string(r.epoch + 1), net);
    broadcast_module(net);  // the branches' BatchNorm statistics: rank 0's
  }
  run.log << "joint epoch " << r.epoch + 1 << "/" << run.config.supernet.joint_epochs << std::fixed
          << std::setprecision(4) << "  largest train loss " << r.loss << " acc "
          << std::setprecision(2) << 100.0 * r.accuracy << "%";
  if (val_loader) {
    const auto quick = run.cal.slice(0, 0, std::min<int64_t>(run.cal.size(0), 512));
    for (size_t b : {net.largest(), net.smallest()}) {
      recalibrate_branch(net, b, quick);
      // each rank evaluates its part of the split
      const auto e = evaluate_branch(net, b, *val_loader, run.classes, run.chw);
      const auto mine = static_cast<double>(val_loader->examples());
      std::vector<double> counts{mine > 0 ? e.accuracy * mine : 0.0,
                                 static_cast<double>(val_images)};
      reduce_counts(counts);
      run.log << "  val " << net.branch(b).name << " " << 100.0 * counts[0] / counts[1] << "%";
    }
  }
  // batch images per second of step time (the students' passes come on top)
  run.log << "  " << std::setprecision(0) << (r.step_seconds > 0 ? r.images / r.step_seconds : 0.0)
          << " img/s  " << format_duration(r.epoch_seconds) << std::endl;
  auto progress = run.progress();
  progress["joint_images"] = joint_images;
  std::vector<int64_t> defined;
  const auto params = net.parameters();
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].grad().defined()) defined.push_back(static_cast<int64_t>(i));
  progress["grads_defined"] = defined;
  net.set_extra_json(progress.dump());
  if (current_rank() != 0) return;  // rank 0 writes the checkpoints
  Checkpoint ck = run.checkpoint(r.epoch + 1);
  ck.optimizer_archive = serialize_optimizer(optimizer);
  write_checkpoint(ck, run.joint_path);
}

}  // namespace

// 3. joint training: the sandwich rule with in-place distillation from the largest branch, on the
// trainer's epoch loop, a checkpoint in out/joint/ after every epoch. Runs joint epochs
// [begin, end); false when that stops short of the phase's end.
bool joint_phase(Run& run, int64_t begin, int64_t end, const std::string& optimizer_state,
                 int64_t* joint_images) {
  const auto& config = run.config;
  auto& net = *run.net;
  const auto t0 = std::chrono::steady_clock::now();
  log_joint_plan(run);
  ensure_writable_dir(fs::path(run.joint_path).parent_path().string());
  const OptimConfig schedule = joint_schedule(config);
  // the joint passes run on train.device; validation, checkpoints and the later phases work on
  // CPU copies of the branches
  const torch::Device device = training_device(config, current_local_rank());
  net.to(device);
  auto optimizer = joint_optimizer(run, schedule, optimizer_state);
  move_optimizer_state(*optimizer, device);
  auto loader_options = shard_of(train_options(config, run.rd.stats, run.rd.split.train.size()));
  loader_options.pin_memory = device.is_cuda();
  data::BatchLoader loader(run.rd.train, run.rd.split.train, loader_options);
  std::unique_ptr<data::BatchLoader> val_loader;
  if (!run.rd.split.validation.empty())
    val_loader = std::make_unique<data::BatchLoader>(
        run.rd.train, shard_of(run.rd.split.validation), eval_options(config.data, run.rd.stats));
  JointStep step(run, *optimizer, schedule, loader, device, joint_images);
  // (the joint passes normalise with each branch's own batch statistics, per rank)
  run.log << describe_ranks(config, nullptr, false);
  EpochLoop loop;
  loop.label = "joint";
  loop.epochs = config.supernet.joint_epochs;
  // epochs continue the warm-up's numbering so the batches differ from it
  loop.loader_epoch_offset = config.train.epochs;
  loop.before_epoch = [&] { net.train(); };
  loop.step = [&](const data::Batch& batch, const StepPosition& pos) { return step(batch, pos); };
  loop.after_epoch = [&](const EpochResult& r) {
    end_joint_epoch(run, r, val_loader.get(), static_cast<int64_t>(run.rd.split.validation.size()),
                    *optimizer, *joint_images);
  };
  loop.run(loader, begin, end);
  if (device.is_cuda()) {
    for (auto& p : net.parameters()) p.mutable_grad() = torch::Tensor();
    net.to(torch::kCPU);
  }
  if (const auto* reducer = step.reducer(); reducer && reducer->steps() > 0)
    run.log << "joint allreduce: " << std::fixed << std::setprecision(2)
            << 1e3 * reducer->exposed_seconds() / reducer->steps() << " ms per step ("
            << reducer->buckets() << " buckets after the last backward pass)\n";
  if (run.checked_steps > 0)
    run.log << "the branches drawn were the same on all " << current_world() << " ranks in "
            << run.checked_steps << " steps\n";
  if (end < config.supernet.joint_epochs) return false;
  run.phase_done("joint", t0, *joint_images);
  return true;
}

}  // namespace adascale::trainer::supernet_detail
