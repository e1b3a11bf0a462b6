#include "models/multitask_loss.h"

#include <torch/torch.h>

#include <cmath>

#include "common/error.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

namespace {

// Below this a GradNorm weight would let its task drop out of training (or flip its sign).
constexpr double kMinGradNormWeight = 1e-4;
// Guards L_i / L_i(0) against a first loss of exactly 0.
constexpr double kMinInitialLoss = 1e-12;

}  // namespace

MultiTaskLossImpl::MultiTaskLossImpl(const config::MultiTaskLoss& config, int num_tasks, const std::string& field)
    : num_tasks_(num_tasks), alpha_(config.gradnorm_alpha()), uwl_clamp_(config.uwl_clamp()) {
  TORCH_CHECK(num_tasks_ >= 1, "MultiTaskLoss: needs at least one task");
  const int n = config.weights_size();
  if (n != 0 && n != num_tasks_)
    throw ConfigError("field " + field + ".weights: " + std::to_string(n) + " weights for " + std::to_string(num_tasks_) +
                      " tasks (give one per task)");
  std::vector<float> w(static_cast<size_t>(num_tasks_), 1.f);
  for (int i = 0; i < n; ++i) {
    if (!(config.weights(i) >= 0) || !std::isfinite(config.weights(i)))
      throw ConfigError("field " + field + ".weights: weights[" + std::to_string(i) + "] must be a finite number >= 0");
    w[static_cast<size_t>(i)] = config.weights(i);
  }
  torch::Tensor weights = torch::tensor(w);
  switch (config.kind()) {
    case config::MultiTaskLoss::WEIGHTED_SUM:
      kind_ = Kind::kWeightedSum;
      fixed_weights = register_buffer("fixed_weights", weights);
      break;
    case config::MultiTaskLoss::UWL:
      kind_ = Kind::kUwl;
      if (n != 0) throw ConfigError("field " + field + ".weights: UWL learns its weights; leave weights out");
      log_variance = register_parameter("log_variance", torch::zeros({num_tasks_}));
      break;
    case config::MultiTaskLoss::GRADNORM:
      kind_ = Kind::kGradNorm;
      if (!(weights.sum().item<double>() > 0)) throw ConfigError("field " + field + ".weights: GradNorm needs a weight > 0");
      if (!(alpha_ >= 0) || !std::isfinite(alpha_)) throw ConfigError("field " + field + ".gradnorm_alpha: must be >= 0");
      weights.clamp_min_(kMinGradNormWeight);
      gradnorm_weights = register_parameter("gradnorm_weights", weights * (num_tasks_ / weights.sum()));
      initial_losses = register_buffer("initial_losses", torch::full({num_tasks_}, -1.0));
      break;
    default:
      throw ConfigError("field " + field + ".kind: unknown kind " + std::to_string(static_cast<int>(config.kind())));
  }
}

torch::Tensor MultiTaskLossImpl::forward(const torch::Tensor& task_losses, const std::vector<torch::Tensor>& shared) {
  TORCH_CHECK(task_losses.dim() == 1 && task_losses.size(0) == num_tasks_, "MultiTaskLoss: expected ", num_tasks_,
              " task losses, got ", task_losses.sizes());
  switch (kind_) {
    case Kind::kWeightedSum:
      return (task_losses * fixed_weights).sum();
    case Kind::kUwl: {
      torch::Tensor s = uwl_clamp_ ? log_variance.clamp_min(0) : log_variance;
      return (2 * task_losses * torch::exp(-s) + s).sum();
    }
    case Kind::kGradNorm:
      return GradNormLoss(task_losses, shared);
  }
  TORCH_CHECK(false, "unknown multi-task loss kind");
}

torch::Tensor MultiTaskLossImpl::GradNormLoss(const torch::Tensor& task_losses, const std::vector<torch::Tensor>& shared) {
  const bool update = is_training() && torch::GradMode::is_enabled() && task_losses.requires_grad() && !shared.empty();
  if (update) {
    torch::NoGradGuard no_grad;
    gradnorm_weights.clamp_min_(kMinGradNormWeight);
    gradnorm_weights.mul_(num_tasks_ / gradnorm_weights.sum());
  }
  // The model's weights learn from sum_i w_i L_i; w itself only from the GradNorm loss below.
  const torch::Tensor w = gradnorm_weights.detach();
  torch::Tensor loss = (w * task_losses).sum();
  if (!update) return loss;

  const torch::Tensor losses = task_losses.detach();
  if (!has_initial_losses_) {  // the buffer may come from a checkpoint
    has_initial_losses_ = initial_losses[0].item<double>() >= 0;
    if (!has_initial_losses_) {
      torch::NoGradGuard no_grad;
      initial_losses.copy_(losses);
      has_initial_losses_ = true;
    }
  }
  // ||dL_i/dW|| per task; the graph stays for the caller's backward.
  std::vector<torch::Tensor> norms;
  norms.reserve(static_cast<size_t>(num_tasks_));
  for (int64_t i = 0; i < num_tasks_; ++i) {
    const torch::autograd::variable_list grads = torch::autograd::grad(
        {task_losses[i]}, shared, /*grad_outputs=*/{}, /*retain_graph=*/true, /*create_graph=*/false, /*allow_unused=*/true);
    torch::Tensor sq = torch::zeros({}, losses.options());
    for (const torch::Tensor& g : grads)
      if (g.defined()) sq = sq + g.square().sum();
    norms.push_back(sq.sqrt());
  }
  const torch::Tensor n = torch::stack(norms);          // ||dL_i/dW||
  const torch::Tensor g = w * n;                         // G_i
  const torch::Tensor ratio = losses / initial_losses.clamp_min(kMinInitialLoss);
  const torch::Tensor target = g.mean() * (ratio / ratio.mean()).pow(alpha_);
  const torch::Tensor grad_w = torch::sign(g - target) * n;  // dL_grad/dw_i
  // Value 0, gradient grad_w on w.
  const torch::Tensor carrier = (gradnorm_weights * grad_w).sum();
  return loss + (carrier - carrier.detach());
}

torch::Tensor MultiTaskLossImpl::task_weights() const {
  torch::NoGradGuard no_grad;
  switch (kind_) {
    case Kind::kWeightedSum:
      return fixed_weights.clone();
    case Kind::kUwl:
      return 2 * torch::exp(-(uwl_clamp_ ? log_variance.clamp_min(0) : log_variance));
    case Kind::kGradNorm:
      return gradnorm_weights.detach().clone();
  }
  return {};
}

}  // namespace shardrec::models
