#include "trainer/data_parallel.h"

#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <sstream>

namespace adascale::trainer {

namespace {

uint32_t crc_of(const data::Dataset& set) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto bytes = static_cast<size_t>(set.shape().numel());
  for (int64_t i = 0; i < set.size(); ++i) {
    crc = crc32(crc, set.pixels(i), static_cast<uInt>(bytes));
    const int64_t label = set.label(i);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(&label), sizeof label);
  }
  return static_cast<uint32_t>(crc);
}

std::string describe_data(const char* name, const data::Dataset& set) {
  const auto s = set.shape();
  std::ostringstream o;
  o << name << " = " << set.size() << " images of " << s.channels << "x" << s.height << "x"
    << s.width << ", " << set.class_names().size() << " classes, crc32 " << std::hex << crc_of(set)
    << "\n";
  return o.str();
}

int64_t checksum(const std::vector<torch::Tensor>& tensors) {
  // the bit patterns of every value, summed as integers: any differing value changes it
  uint64_t sum = 0;
  for (const auto& t : tensors) {
    if (!t.defined()) continue;
    const auto c = t.detach().to(torch::kCPU).contiguous();
    const auto* p = static_cast<const uint8_t*>(c.data_ptr());
    const size_t n = static_cast<size_t>(c.numel()) * c.element_size();
    for (size_t i = 0; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      sum = sum * 1099511628211ULL + w;
    }
    for (size_t i = n - n % 8; i < n; ++i) sum = sum * 131 + p[i];
  }
  return static_cast<int64_t>(sum);
}

}  // namespace

void require_same_run(const TrainConfig& config, const RunData& rd) {
  RankGroup* group = current_group();
  if (!group) return;
  TrainConfig c = config;
  c.out_dir.clear();
  c.data.root.clear();  // where the data lies may differ by host; what it holds may not
  group->require_same("config", comparable_config(c));
  group->require_same("data", describe_data("train", *rd.train) + describe_data("test", *rd.test));
}

data::LoaderOptions shard_of(data::LoaderOptions o) {
  o.shard_rank = current_rank();
  o.shard_count = current_world();
  return o;
}

std::vector<int64_t> shard_of(const std::vector<int64_t>& indices) {
  const auto n = static_cast<int64_t>(indices.size());
  const int64_t r = current_rank(), w = current_world();
  return {indices.begin() + n * r / w, indices.begin() + n * (r + 1) / w};
}

std::unique_ptr<GradientReducer> make_reducer(const std::vector<torch::Tensor>& params,
                                              bool single_backward) {
  RankGroup* group = current_group();
  if (!group || group->world() == 1) return nullptr;
  bool overlap = single_backward;
  if (const char* v = std::getenv("ADASCALE_ALLREDUCE"); v && *v) {
    const std::string mode = v;
    if (mode != "overlap" && mode != "after-backward")
      throw ConfigError("ADASCALE_ALLREDUCE='" + mode + "': expected overlap or after-backward");
    overlap = overlap && mode == "overlap";
  }
  int64_t kb = 256;
  if (const char* v = std::getenv("ADASCALE_BUCKET_KB"); v && *v) {
    char* end = nullptr;
    kb = std::strtoll(v, &end, 10);
    if (*end || kb < 1 || kb > (int64_t{1} << 22))
      throw ConfigError(std::string("ADASCALE_BUCKET_KB='") + v + "': expected 1..4194304");
  }
  return std::make_unique<GradientReducer>(params, *group, kb * 1024, overlap);
}

void reduce_counts(std::vector<double>& values) {
  RankGroup* group = current_group();
  if (!group || group->world() == 1 || values.empty()) return;
  auto t = torch::tensor(values, torch::kFloat64);
  group->allreduce_sum(t);
  for (size_t i = 0; i < values.size(); ++i) values[i] = t[static_cast<int64_t>(i)].item<double>();
}

namespace {

// a mean loss and accuracy over `count` examples, summed over ranks: the means over all of them
int64_t reduce_means(double* loss, double* accuracy, int64_t count) {
  std::vector<double> v{*loss * count, *accuracy * count, static_cast<double>(count)};
  reduce_counts(v);
  const auto total = static_cast<int64_t>(std::llround(v[2]));
  *loss = total ? v[0] / v[2] : 0.0;
  *accuracy = total ? v[1] / v[2] : 0.0;
  return total;
}

}  // namespace

EpochResult reduce_epoch(const EpochResult& local) {
  EpochResult r = local;
  r.images = reduce_means(&r.loss, &r.accuracy, local.images);
  return r;
}

EvalResult reduce_eval(const EvalResult& local) {
  RankGroup* group = current_group();
  if (!group || group->world() == 1) return local;
  EvalResult r = local;
  r.examples = reduce_means(&r.loss, &r.accuracy, local.examples);
  if (r.confusion.defined()) {
    r.confusion = local.confusion.clone();
    group->allreduce_sum(r.confusion);
  }
  return r;
}

void broadcast_module(torch::nn::Module& module) {
  RankGroup* group = current_group();
  if (!group || group->world() == 1) return;
  auto tensors = module.parameters();
  for (const auto& b : module.buffers()) tensors.push_back(b);
  group->broadcast(tensors);
}

void require_same_parameters(const std::string& what, const torch::nn::Module& module) {
  RankGroup* group = current_group();
  if (!group || group->world() == 1) return;
  group->require_same_value(what, checksum(module.parameters()));
}

void require_same_state(const std::string& what,
                        const std::map<std::string, torch::Tensor>& state) {
  RankGroup* group = current_group();
  if (!group || group->world() == 1) return;
  std::vector<torch::Tensor> tensors;
  for (const auto& [name, t] : state) tensors.push_back(t);
  group->require_same_value(what, checksum(tensors));
}

std::string describe_ranks(const TrainConfig& config, const GradientReducer* reducer,
                           bool synchronised_batchnorm) {
  RankGroup* group = current_group();
  if (!group) return "";
  std::ostringstream o;
  o << "data-parallel: " << group->world() << " ranks x " << config.train.threads
    << " thread(s), global batch " << config.train.batch_size << " ("
    << config.train.batch_size / group->world() << " per rank), Gloo allreduce";
  if (reducer)
    o << " in " << reducer->buckets() << " bucket(s), "
      << (reducer->overlaps() ? "overlapped with backward" : "after backward");
  o << (synchronised_batchnorm
            ? "; BatchNorm statistics synchronised over the global batch\n"
            : "; BatchNorm statistics per rank, buffers from rank 0 before each evaluation\n");
  return o.str();
}

}  // namespace adascale::trainer
