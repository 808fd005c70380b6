// adascale train --config FILE [--resume] [--stop-after N] [--independent] [--nproc N]
//                [rendezvous options] [--section.key VALUE]
#include <iostream>
#include <memory>

#include "base/command_line.h"
#include "supernet/supernet_training.h"
#include "tools/adascale/commands.h"
#include "trainer/local_launcher.h"
#include "trainer/progress.h"
#include "trainer/rank_group.h"
#include "trainer/training.h"

namespace adascale::cli {

namespace {

// the arguments without --nproc (each rank gets the rest)
std::vector<std::string> without_nproc(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--nproc") {
      ++i;
      continue;
    }
    if (args[i].rfind("--nproc=", 0) == 0) continue;
    out.push_back(args[i]);
  }
  return out;
}

}  // namespace

int run_train(const std::vector<std::string>& args) {
  std::string config_path;
  bool resume = false, independent = false;
  int64_t stop_after = 0;
  std::vector<std::string> overrides;
  std::string threads, epochs, seed, out, name;  // shortcuts, checked like the keys
  int nproc = 1;
  trainer::RendezvousOptions rdv;
  int64_t rendezvous_timeout = 60;
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
      .option("nproc", &nproc,
              "start N data-parallel ranks on this machine (threads per rank: --threads)")
      .range("nproc", 1, 256)
      .option("rank", &rdv.rank, "this process's rank (else RANK)")
      .range("rank", 0)
      .option("world-size", &rdv.world, "the number of ranks (else WORLD_SIZE)")
      .range("world-size", 1, 4096)
      .option("local-rank", &rdv.local_rank, "the rank on this machine (else LOCAL_RANK)")
      .range("local-rank", 0)
      .option("master-addr", &rdv.master_addr, "rank 0's address (else MASTER_ADDR)", "HOST")
      .option("master-port", &rdv.port, "rank 0's rendezvous port (else MASTER_PORT)", "PORT")
      .range("master-port", 1, 65535)
      .option("rendezvous-timeout", &rendezvous_timeout,
              "seconds to wait for every rank, and for each collective", "S")
      .range("rendezvous-timeout", 1, 86400)
      .dotted_options(&overrides, "override a config key, e.g. --train.epochs 5 --data.root DIR");
  // flags beat torchrun's variables, which beat the defaults
  bool from_env = false;
  rdv = trainer::rendezvous_from_environment(rdv, &from_env);
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
  if (nproc > 1) {
    if (from_env || cli.given("world-size"))
      throw base::UsageError("--nproc starts the ranks itself; drop WORLD_SIZE / --world-size");
    std::cout << "config " << config_path << " -> " << config.out_dir << ", " << nproc
              << " ranks x " << config.train.threads << " thread(s)\n";
    std::vector<std::string> argv{"/proc/self/exe", "train"};
    for (const auto& a : without_nproc(args)) argv.push_back(a);
    trainer::LaunchOptions launch;
    launch.nproc = nproc;
    return trainer::launch_local_ranks(argv, launch, std::cout) == 0 ? 0 : 1;
  }
  if (rdv.rank >= rdv.world)
    throw base::UsageError("--rank " + std::to_string(rdv.rank) + " is outside a world of " +
                           std::to_string(rdv.world));
  rdv.timeout = std::chrono::seconds(rendezvous_timeout);
  std::unique_ptr<trainer::RankGroup> group;
  if (rdv.world > 1) group = trainer::RankGroup::join(rdv);
  trainer::RankScope scope(group.get());
  // only rank 0 speaks; the others' errors still reach stderr
  std::ostream quiet(nullptr);
  std::ostream& log = !group || group->leader() ? std::cout : quiet;
  log << "config " << config_path << " -> " << config.out_dir << "\n";
  if (independent && !config.supernet.enabled())
    throw base::UsageError("--independent needs a config with a [supernet] branch space");
  if (independent && group && group->world() > 1)
    throw base::UsageError("--independent trains in one process; drop the ranks");
  if (independent && (resume || stop_after > 0))
    throw base::UsageError(
        "--independent resumes by itself (finished branches are kept); drop --resume and "
        "--stop-after");
  if (config.supernet.enabled()) {
    if (independent) {
      trainer::train_independent(config, log);
      return 0;
    }
    auto outcome = trainer::train_supernet(config, log, resume, stop_after);
    log << "checkpoint: " << outcome.checkpoint_path << "\n";
    return 0;
  }
  auto outcome = trainer::train(config, resume, log, stop_after);
  log << "checkpoint: " << outcome.checkpoint_path << "\n";
  if (outcome.epochs_run > 0)
    log << "training throughput: " << static_cast<int64_t>(outcome.images_per_second)
        << " images/s over " << trainer::format_duration(outcome.train_seconds)
        << " of training steps\n";
  return 0;
}

}  // namespace adascale::cli
