// Checkpoint: an HDF5 file holding everything needed to evaluate, resume or export a run.
//
//   /                    attributes: format_version, epoch (last completed), config (INI text),
//                        architecture (Backbone::describe), spec (Backbone::spec_json), input
//                        shape, class names
//                        normalize_mean/std, test_accuracy/test_loss (-1 until evaluated),
//                        attributes_crc32 (format 2)
//   /model/<name>        one dataset per parameter and buffer (BN running statistics included),
//                        float32 or int64, named as in named_parameters()/named_buffers()
//   /optimizer/archive   the optimizer state serialized by torch::serialize (opaque bytes)
//   /metrics/history     float64 [epochs x columns], column names in attribute `columns`
//
// Integrity (format_version 2): every dataset has an attribute `crc32` (zlib CRC-32 of its raw
// bytes) and the root an `attributes_crc32` over the root attributes, metrics/columns and the list
// of datasets (path, type, shape, crc32). The reader checks every shape against the bytes the file
// stores before allocating, then every checksum, and refuses a mismatch naming the dataset, so a
// damaged file never loads different data. Format 1 files (no checksums) are still read, with a
// warning on stderr: refusing them would strand every run trained before; a format 1 file that
// carries checksums is refused (a damaged version number cannot switch verification off).
//
// Files are written to a temporary unique to the writer (base::unique_temp_path), fsynced, then
// renamed over the path and the folder fsynced (base::replace_path), so a crash or power cut
// never leaves a half-written checkpoint.
#pragma once

#include <torch/torch.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/module_state.h"

namespace adascale::trainer {

struct Checkpoint {
  int64_t format_version = 2;  // as read; write_checkpoint always writes the current format
  int64_t epoch = 0;           // epochs completed
  std::string config_ini;
  std::string architecture;
  std::string spec;     // Backbone::spec_json(): rebuilds compressed variants; may be empty
  std::string lineage;  // compression operators applied, canonical ("prune0.50>lowrank0.25@3")
  std::vector<int64_t> input_shape;  // C, H, W
  std::vector<std::string> class_names;
  std::vector<float> normalize_mean;  // per channel, pixel units in [0,1]
  std::vector<float> normalize_std;
  double test_accuracy = -1.0;  // final test metrics, -1 until evaluated
  double test_loss = -1.0;
  std::map<std::string, torch::Tensor> tensors;  // parameters and buffers by name
  std::string optimizer_archive;                 // bytes; empty if absent
  std::vector<std::string> metric_columns;
  std::vector<std::vector<double>> metrics;  // one row per epoch
};

void write_checkpoint(const Checkpoint& ckpt, const std::string& path);
Checkpoint read_checkpoint(const std::string& path);

std::string serialize_optimizer(const torch::optim::Optimizer& optimizer);
void deserialize_optimizer(torch::optim::Optimizer& optimizer, const std::string& bytes);

}  // namespace adascale::trainer
