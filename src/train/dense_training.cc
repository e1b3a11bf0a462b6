#include "train/dense_training.h"

#include <cmath>

namespace shardrec::train {

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const config::DenseOptimizer& o,
                                                       std::vector<torch::Tensor> params) {
  switch (o.kind()) {
    case config::DenseOptimizer::ADAGRAD:
      return std::make_unique<torch::optim::Adagrad>(
          params, torch::optim::AdagradOptions(o.lr()).weight_decay(o.weight_decay()).eps(o.has_eps() ? o.eps() : 1e-10));
    case config::DenseOptimizer::SGD:
      return std::make_unique<torch::optim::SGD>(
          params, torch::optim::SGDOptions(o.lr()).momentum(o.momentum()).weight_decay(o.weight_decay()));
    case config::DenseOptimizer::ADAMW:
      return std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(o.lr())
                                                               .betas({o.beta1(), o.beta2()})
                                                               .eps(o.eps())
                                                               .weight_decay(o.weight_decay()));
    default:
      return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(o.lr())
                                                              .betas({o.beta1(), o.beta2()})
                                                              .eps(o.eps())
                                                              .weight_decay(o.weight_decay()));
  }
}

// Learning rate of epoch `e` (0-based) under the configured schedule.
double ScheduledLr(const config::Trainer& t, int e) {
  const double lr = t.optimizer().lr();
  const config::Scheduler& s = t.scheduler();
  switch (s.kind()) {
    case config::Scheduler::STEP: return lr * std::pow(s.gamma(), e / s.step_size());
    case config::Scheduler::EXPONENTIAL: return lr * std::pow(s.gamma(), e);
    case config::Scheduler::COSINE:
      return s.min_lr() + 0.5 * (lr - s.min_lr()) * (1 + std::cos(M_PI * e / std::max(1, t.epochs())));
    default: return lr;
  }
}

// A deep copy of every parameter and buffer, to restore the best epoch's dense weights.
std::vector<torch::Tensor> Snapshot(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m.parameters()) out.push_back(p.detach().clone());
  for (auto& b : m.buffers()) out.push_back(b.detach().clone());
  return out;
}

void Restore(torch::nn::Module& m, const std::vector<torch::Tensor>& snap) {
  torch::NoGradGuard ng;
  size_t i = 0;
  for (auto& p : m.parameters()) p.copy_(snap[i++]);
  for (auto& b : m.buffers()) b.copy_(snap[i++]);
}

}  // namespace shardrec::train
