// adascale compress --checkpoint FILE --ops OPS --out FILE [--calibration N] ...
#include <cstdio>
#include <iostream>

#include "base/command_line.h"
#include "supernet/checkpoint_compression.h"
#include "tools/adascale/commands.h"

namespace adascale::cli {

int run_compress(const std::vector<std::string>& args) {
  trainer::CompressionRequest r;
  base::CommandLine cli("adascale compress",
                        "physically compress a trained ResNet or MobileNetV2");
  cli.option("checkpoint", &r.checkpoint, "the trained ResNet or MobileNetV2 checkpoint", "FILE")
      .required("checkpoint")
      .option("ops", &r.ops,
              "operators applied left to right: prune:F, lowrank:F, dpconv, fire[:F], each\n"
              "with optional @stages (from 1), e.g. prune:0.5,lowrank:0.25@3; a MobileNetV2\n"
              "takes prune:F alone (its expansion channels) (docs/concepts.md)",
              "LIST")
      .required("ops")
      .option("out", &r.out, "the compressed checkpoint", "FILE")
      .required("out")
      .option("calibration", &r.calibration,
              "training images for BN recalibration and distillation")
      .range("calibration", 16)
      .option("threads", &r.threads, "LibTorch threads")
      .range("threads", 1, 1024)
      .option("finetune-epochs", &r.finetune_epochs, "fine-tuning epochs after compression")
      .range("finetune-epochs", 0)
      .option("finetune-lr", &r.finetune_lr, "fine-tuning rate (0: a tenth of the training rate)")
      .range("finetune-lr", 0);
  if (cli.parse(args) != base::CommandLine::Outcome::kRun) return 0;
  const auto o = trainer::compress_checkpoint(r, std::cout);
  std::printf("%-12s %10s %10s %9s\n", "", "params", "M MACs", "test acc");
  std::printf("%-12s %10lld %10.2f %8.2f%%\n", "before", static_cast<long long>(o.before.params),
              o.before.macs / 1e6, 100.0 * o.before_accuracy);
  std::printf("%-12s %10lld %10.2f %8.2f%%\n", "after", static_cast<long long>(o.after.params),
              o.after.macs / 1e6, 100.0 * o.after_accuracy);
  std::printf("wrote %s (%s)\n", r.out.c_str(), o.architecture.c_str());
  return 0;
}

}  // namespace adascale::cli
