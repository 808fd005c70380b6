// The state one multi-branch training run shares between its phases, and the helpers more than
// one phase uses (internal to supernet/; the phases: supernet/supernet_training.h).
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "supernet/detail.h"
#include "supernet/multi_branch_network.h"
#include "trainer/progress.h"
#include "trainer/training.h"

namespace adascale::trainer::supernet_detail {

// the state of one multi-branch run, shared by its phases
struct Run {
  const TrainConfig& config;
  std::ostream& log;
  RunData rd;
  std::vector<int64_t> chw{};
  int64_t classes = 0;
  std::shared_ptr<MultiBranchNetwork> net{};
  std::vector<size_t> every_step{};
  torch::Tensor cal{}, cal_labels{};  // the calibration sample
  nlohmann::json phases = nlohmann::json::array();
  std::string backbone_path{};
  double backbone_accuracy = -1;
  std::string joint_path{};  // out/joint/checkpoint.h5
  // parameters whose gradient exists when a joint epoch ends: zero_grad keeps a gradient once it
  // exists, and SGD steps (momentum, weight decay) a parameter with a zero gradient but skips one
  // without, so a resumed run recreates them to take the same steps
  std::vector<int64_t> grads_defined{};
  int64_t checked_steps = 0;  // joint steps whose branch draw was compared across ranks

  void phase_done(const std::string& name, std::chrono::steady_clock::time_point t0,
                  int64_t images) {
    const double s = seconds_since(t0);
    phases.push_back({{"phase", name}, {"seconds", s}, {"images", images}});
    log << "phase " << name << " done in " << format_duration(s) << "\n";
  }
  // what the checkpoints of the run carry besides the weights: phases so far and the backbone
  nlohmann::json progress() const {
    return {
        {"phases", phases}, {"backbone", backbone_path}, {"backbone_accuracy", backbone_accuracy}};
  }
  Checkpoint checkpoint(int64_t epoch) const {
    Checkpoint ck;
    ck.config_ini = config.to_ini();
    ck.architecture = net->describe();
    ck.spec = net->spec_json();
    ck.epoch = epoch;
    ck.input_shape = chw;
    ck.class_names = rd.train->class_names();
    ck.normalize_mean = rd.stats.mean;
    ck.normalize_std = rd.stats.std;
    ck.tensors = net->full_state();
    return ck;
  }
};

struct BranchEval {
  double accuracy = 0;
  int64_t params = 0, macs = 0;
};
// the branch's own BN statistics, recomputed on `cal` through its physical ResNet
void recalibrate_branch(MultiBranchNetwork& net, size_t b, const torch::Tensor& cal);
// accuracy and cost of the branch's physical ResNet on the loader's images
BranchEval evaluate_branch(MultiBranchNetwork& net, size_t b, data::BatchLoader& loader,
                           int64_t classes, const std::vector<int64_t>& chw);
// a branch's forward pass in the joint phase, its exits' logits into `exits` when they train
// with it (their features detached when `detach_exits`)
torch::Tensor joint_pass(MultiBranchNetwork& net, size_t b, const torch::Tensor& images,
                         std::vector<torch::Tensor>* exits, bool with_exits, bool detach_exits);

// 3. joint training (supernet/joint_phase.cpp): joint epochs [begin, end), a checkpoint in
// out/joint/ after each; false when that stops short of the phase's end
bool joint_phase(Run& run, int64_t begin, int64_t end, const std::string& optimizer_state,
                 int64_t* joint_images);

}  // namespace adascale::trainer::supernet_detail
