// train_independent: every branch of the space trained as its own model from scratch, the
// baseline the multi-branch network is compared with. Resumable per branch (summary.json lists
// the finished ones).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "supernet/detail.h"
#include "supernet/supernet_training.h"

namespace adascale::trainer {

using namespace supernet_detail;
using nlohmann::json;
namespace fs = std::filesystem;

void train_independent(const TrainConfig& config, std::ostream& log) {
  config.validate();
  RunData rd = load_run_data(config);
  const auto shape = rd.train->shape();
  const int64_t classes = rd.train->num_classes();
  const auto net_ptr =
      multi_branch_from_config(config, shape.channels, shape.height, shape.width, classes);
  const MultiBranchNetwork& net = *net_ptr;
  const fs::path dir = fs::path(config.out_dir) / "independent";
  ensure_writable_dir(dir.string());
  const fs::path summary_path = dir / "summary.json";
  json done = json::object();
  if (fs::exists(summary_path)) {
    std::ifstream f(summary_path);
    done = json::parse(f, nullptr, false);
    if (!done.is_object() || !done.contains("branches")) done = json::object();
  }
  json rows = done.value("branches", json::array());
  const int64_t epochs = config.train.epochs + config.supernet.joint_epochs;
  for (size_t b = 0; b < net.branch_count(); ++b) {
    const auto& name = net.branch(b).name;
    bool skip = false;
    for (const auto& r : rows) skip = skip || r.at("name") == name;
    if (skip) {
      log << "independent " << name << ": already trained, kept\n";
      continue;
    }
    TrainConfig c = config;
    c.supernet = SupernetConfig{};
    c.train.epochs = epochs;
    c.out_dir = (dir / branch_dir_name(name)).string();
    c.source = config.source + " (independent " + name + ")";
    log << "independent " << b + 1 << "/" << net.branch_count() << ": " << name << ", " << epochs
        << " epochs from scratch\n";
    const auto t0 = std::chrono::steady_clock::now();
    const auto outcome = train(c, false, log, 0, net.branch_spec_json(b));
    rows.push_back({{"name", name},
                    {"accuracy", outcome.test.accuracy},
                    {"seconds", seconds_since(t0)},
                    {"images", epochs * static_cast<int64_t>(rd.split.train.size())},
                    {"macs", net.branch_macs(b)}});
    done["branches"] = rows;
    done["epochs"] = epochs;
    done["threads"] = config.train.threads;
    write_text_atomic(summary_path.string(), done.dump(2) + "\n");
  }
  log << "independent training of " << net.branch_count() << " branches: summary in "
      << summary_path.string() << "\n";
}
}  // namespace adascale::trainer
