// From checkpoints to what export_bundle takes: the branches to export (every checkpoint's model,
// or chosen branches of a multi-branch one, in the chosen precisions), the held-out images, the
// int8 calibration set-up; and the Pareto-front export. The orchestration of `adascale export`
// and of the int8 rows of `adascale eval`.
#pragma once

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "datasets/batch_loader.h"
#include "export/bundle_exporter.h"
#include "supernet/multi_branch_network.h"
#include "trainer/checkpoint.h"
#include "trainer/config.h"

namespace adascale::exporter {

// int8 calibration / fine-tuning: a seeded sample of the training split, normalized like the
// checkpoint, and the [supernet] int8_* and qat_* settings of its config
struct Int8Calibration {
  torch::Tensor images, labels;
  QuantizationOptions options;
};
Int8Calibration int8_calibration(const trainer::TrainConfig& config,
                                 const trainer::Checkpoint& ckpt);

struct CheckpointSources {
  std::vector<ExportSource> sources;
  trainer::Checkpoint first;    // the first checkpoint (normalization, classes)
  trainer::TrainConfig config;  // its stored config
};
// branches: "" or "all" (every branch), or names ("NAME>int8" for a twin), multi-branch
// checkpoints only; precisions: "" keeps the space's own (fp32 for single models). Checkpoints
// must agree on input shape, classes and normalization. Throws ConfigError naming the culprit.
CheckpointSources sources_from_checkpoints(const std::vector<std::string>& paths,
                                           const std::string& branches,
                                           const std::string& precisions);

// the held-out (test split) images and labels of a checkpoint's dataset, normalized
std::pair<torch::Tensor, torch::Tensor> held_out_images(const trainer::TrainConfig& config,
                                                        const trainer::Checkpoint& ckpt);

// exports only the branches on the Pareto front of measured runtime latency (median, batch 1)
// against held-out accuracy: every candidate is profiled into a temporary bundle next to
// out_path first, so this costs about twice a plain export
ExportResult export_pareto_bundle(const std::vector<ExportSource>& sources,
                                  const torch::Tensor& images, const torch::Tensor& labels,
                                  const std::string& out_path, const ExportOptions& options,
                                  std::ostream& log);

// an int8 twin as the exporter builds it: the top-1 accuracy of its fake-quant LibTorch model on
// the loader's images, and the weight bytes its prepared graph holds
struct Int8TwinMeasure {
  double accuracy = 0;
  size_t weight_bytes = 0;
};
Int8TwinMeasure measure_int8_twin(const trainer::MultiBranchNetwork& net, const trainer::BranchRef& ref,
                                  const Int8Calibration& calibration, data::BatchLoader& loader);

}  // namespace adascale::exporter
