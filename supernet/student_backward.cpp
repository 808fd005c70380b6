// student_backward: the students' half of a joint step, concurrently where asked, their gradients
// summed in a fixed order (supernet/supernet_training.h).
#include <atomic>
#include <mutex>
#include <thread>

#include "supernet/supernet_run.h"
#include "supernet/supernet_training.h"

namespace adascale::trainer {

void student_backward(MultiBranchNetwork& net, const torch::Tensor& images,
                      const std::vector<StudentPass>& students, const StudentLoss& loss,
                      bool with_exits, bool detach_exits, int threads) {
  const auto params = net.parameters();
  std::vector<std::vector<torch::Tensor>> grads(students.size());
  auto run = [&](size_t i) {
    const auto& s = students[i];
    const auto x = images.slice(0, s.start, s.start + s.rows);
    std::vector<torch::Tensor> exits;
    auto logits = supernet_detail::joint_pass(net, s.branch, x, &exits, with_exits, detach_exits);
    grads[i] = torch::autograd::grad({loss(logits, exits, s.start, s.rows)}, params, {},
                                     /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
  };
  const int workers = std::min<int>(threads, static_cast<int>(students.size()));
  if (workers <= 1) {
    for (size_t i = 0; i < students.size(); ++i) run(i);
  } else {
    // the caller's thread is one of the workers; every worker runs its convolutions on one
    // intra-op thread, restored on the caller's afterwards
    const int saved = at::get_num_threads();
    std::atomic<size_t> next{0};
    std::mutex failed;
    std::exception_ptr error;
    auto work = [&] {
      at::set_num_threads(1);
      for (size_t i; (i = next++) < students.size();) try {
          run(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(failed);
          if (!error) error = std::current_exception();
        }
    };
    std::vector<std::thread> pool;
    for (int w = 1; w < workers; ++w) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    at::set_num_threads(saved);
    if (error) std::rethrow_exception(error);
  }
  torch::NoGradGuard no_grad;
  for (const auto& g : grads)
    for (size_t k = 0; k < params.size(); ++k) {
      if (!g[k].defined()) continue;
      auto& to = params[k].mutable_grad();
      // (a gradient tensor can be shared by two parameters, so it is copied, never adopted)
      if (to.defined())
        to.add_(g[k]);
      else
        to = g[k].clone();
    }
}

}  // namespace adascale::trainer
