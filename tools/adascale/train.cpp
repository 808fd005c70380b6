// adascale train --config FILE [--resume] [--stop-after N] [--independent] [--section.key VALUE]
#include <iostream>

#include "base/command_line.h"
#include "supernet/supernet_training.h"
#include "tools/adascale/commands.h"
#include "trainer/progress.h"
#include "trainer/training.h"

namespace adascale::cli {

int run_train(const std::vector<std::string>& args) {
  std::string config_path;
  bool resume = false, independent = false;
  int64_t stop_after = 0;
  std::vector<std::string> overrides;
  std::string threads, epochs, seed, out, name;  // shortcuts, checked like the keys
  base::CommandLine cli("adascale train", "train the model a config describes");
  cli.option("config", &config_path, "the training config (INI; docs/config.md)", "FILE")
      .required("config")
      .flag("resume", &resume,
            "continue from the last checkpoint in the output folder (a multi-branch run: of\n"
            "its warm-up or joint phase); the weights end as an uninterrupted run's")
      .option("stop-after", &stop_after,
              "end this invocation after N epochs (a multi-branch run counts the warm-up's,\n"
              "then the joint phase's); continue with --resume")
      .range("stop-after", 1)
      .default_text("stop-after", "")
      .flag("independent", &independent,
            "train each branch of the [supernet] space as a model of its own (the baseline)")
      .option("threads", &threads, "shortcut for --train.threads", "N")
      .option("epochs", &epochs, "shortcut for --train.epochs", "N")
      .option("seed", &seed, "shortcut for --train.seed", "N")
      .option("out", &out, "shortcut for the output folder (out_dir)", "DIR")
      .option("name", &name, "override the run's name (the bundle's model name)", "NAME")
      .dotted_options(&overrides, "override a config key, e.g. --train.epochs 5 --data.root DIR");
  if (cli.parse(args) != base::CommandLine::Outcome::kRun) return 0;
  for (const auto& [name, value] :
       {std::pair{"--threads", threads}, std::pair{"--epochs", epochs}, std::pair{"--seed", seed},
        std::pair{"--out", out}, std::pair{"--name", name}})
    if (!value.empty()) {
      overrides.push_back(name);
      overrides.push_back(value);
    }
  auto config = trainer::load_config_file(config_path);
  trainer::apply_overrides(config, overrides);
  config.validate();
  std::cout << "config " << config_path << " -> " << config.out_dir << "\n";
  if (independent && !config.supernet.enabled())
    throw base::UsageError("--independent needs a config with a [supernet] branch space");
  if (independent && (resume || stop_after > 0))
    throw base::UsageError(
        "--independent resumes by itself (finished branches are kept); drop --resume and "
        "--stop-after");
  if (config.supernet.enabled()) {
    if (independent) {
      trainer::train_independent(config, std::cout);
      return 0;
    }
    auto outcome = trainer::train_supernet(config, std::cout, resume, stop_after);
    std::cout << "checkpoint: " << outcome.checkpoint_path << "\n";
    return 0;
  }
  auto outcome = trainer::train(config, resume, std::cout, stop_after);
  std::cout << "checkpoint: " << outcome.checkpoint_path << "\n";
  if (outcome.epochs_run > 0)
    std::cout << "training throughput: " << static_cast<int64_t>(outcome.images_per_second)
              << " images/s over " << trainer::format_duration(outcome.train_seconds)
              << " of training steps\n";
  return 0;
}

}  // namespace adascale::cli
