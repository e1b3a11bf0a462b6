#include "ps/row_optimizer.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace shardrec::ps {
namespace {

// Adam keeps its int64 step count in the two floats after m[dim] and v[dim] (bit-copied).
constexpr int kStepFloats = sizeof(int64_t) / sizeof(float);

}  // namespace

RowOptimizer::RowOptimizer(const OptimizerSpec& spec, int dim) : spec_(spec), dim_(dim) {
  switch (spec.kind) {
    case OptimizerSpec::Kind::kSgd: state_floats_ = 0; break;
    case OptimizerSpec::Kind::kAdagrad: state_floats_ = dim; break;
    case OptimizerSpec::Kind::kAdam: state_floats_ = 2 * dim + kStepFloats; break;
    case OptimizerSpec::Kind::kRowwiseAdagrad: state_floats_ = 1; break;
    case OptimizerSpec::Kind::kFtrl: state_floats_ = 2 * dim; break;
    default: throw std::invalid_argument("RowOptimizer: unknown optimizer kind");
  }
  const double lr = spec.lr, beta1 = spec.beta1, beta2 = spec.beta2;
  neg_lr_ = static_cast<float>(-lr);
  weight_decay_ = spec.weight_decay;
  eps_ = spec.eps;
  beta1_ = static_cast<float>(beta1);
  beta2_ = static_cast<float>(beta2);
  one_minus_beta1_ = static_cast<float>(1.0 - beta1);
  one_minus_beta2_ = static_cast<float>(1.0 - beta2);
}

void RowOptimizer::InitState(float* state) const {
  switch (spec_.kind) {
    case OptimizerSpec::Kind::kSgd: return;
    case OptimizerSpec::Kind::kAdagrad:
      for (int j = 0; j < dim_; ++j) state[j] = spec_.initial_accumulator;
      return;
    case OptimizerSpec::Kind::kAdam: {
      for (int j = 0; j < 2 * dim_; ++j) state[j] = 0.f;
      const int64_t step = 0;
      std::memcpy(state + 2 * dim_, &step, sizeof(step));
      return;
    }
    case OptimizerSpec::Kind::kRowwiseAdagrad: state[0] = spec_.initial_accumulator; return;
    case OptimizerSpec::Kind::kFtrl:
      for (int j = 0; j < dim_; ++j) state[j] = 0.f;                           // z
      for (int j = 0; j < dim_; ++j) state[dim_ + j] = spec_.initial_accumulator;  // n
      return;
  }
}

void RowOptimizer::Apply(float* weights, float* state, const float* grad) const {
  switch (spec_.kind) {
    case OptimizerSpec::Kind::kSgd: ApplySgd(weights, grad); return;
    case OptimizerSpec::Kind::kAdagrad: ApplyAdagrad(weights, state, grad); return;
    case OptimizerSpec::Kind::kAdam: ApplyAdam(weights, state, grad); return;
    case OptimizerSpec::Kind::kRowwiseAdagrad: ApplyRowwiseAdagrad(weights, state, grad); return;
    case OptimizerSpec::Kind::kFtrl: ApplyFtrl(weights, state, grad); return;
  }
}

// torch::optim::SGD (momentum 0): d_p = d_p.add(p, weight_decay); p.add_(d_p, -lr).
void RowOptimizer::ApplySgd(float* w, const float* grad) const {
  const float wd = weight_decay_, neg_lr = neg_lr_;
  if (wd != 0.f) {
    for (int j = 0; j < dim_; ++j) {
      const float g = grad[j] + wd * w[j];
      w[j] = w[j] + neg_lr * g;
    }
  } else {
    for (int j = 0; j < dim_; ++j) w[j] = w[j] + neg_lr * grad[j];
  }
}

// torch::optim::Adagrad (lr_decay 0, so clr = lr): grad = grad.add(p, weight_decay);
// sum.addcmul_(grad, grad, 1.0); std = sum.sqrt().add_(eps); p.addcdiv_(grad, std, -clr).
void RowOptimizer::ApplyAdagrad(float* w, float* sum, const float* grad) const {
  const float wd = weight_decay_, neg_lr = neg_lr_, eps = eps_;
  for (int j = 0; j < dim_; ++j) {
    float g = grad[j];
    if (wd != 0.f) g = g + wd * w[j];
    sum[j] = sum[j] + 1.0f * g * g;
    const float std = std::sqrt(sum[j]) + eps;
    w[j] = w[j] + neg_lr * g / std;
  }
}

// torch::optim::Adam (amsgrad false), torch/csrc/api/src/optim/adam.cpp in v1.13:
//   step += 1; bias_correction{1,2} = 1 - pow(beta{1,2}, step)          (double)
//   grad = grad.add(p, weight_decay)
//   exp_avg.mul_(beta1).add_(grad, 1 - beta1)
//   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
//   denom = (exp_avg_sq.sqrt() / sqrt(bias_correction2)).add_(eps)
//   step_size = lr / bias_correction1                                    (double)
//   p.addcdiv_(exp_avg, denom, -step_size)
// Tensor kernels run in float with the double scalars cast to float; addcmul is
// self + value * t1 * t2 and addcdiv is self + value * t1 / t2, evaluated left to right.
// The per-step scalars of Adam, exactly as torch computes them (double pow, cast to float). Two
// pow calls per row were a third of a push; rows pushed together mostly share a handful of step
// counts, so a small per-thread memo keyed by (betas, lr, step) returns the identical values.
void RowOptimizer::AdamScalars(int64_t step, float* sqrt_bc2, float* neg_step_size) const {
  struct Entry {
    int64_t step = -1;
    float beta1 = 0, beta2 = 0, lr = 0;
    float sqrt_bc2 = 0, neg_step_size = 0;
  };
  constexpr int kSlots = 1024;
  thread_local Entry memo[kSlots];
  Entry& e = memo[static_cast<uint64_t>(step) & (kSlots - 1)];
  if (e.step == step && e.beta1 == spec_.beta1 && e.beta2 == spec_.beta2 && e.lr == spec_.lr) {
    *sqrt_bc2 = e.sqrt_bc2;
    *neg_step_size = e.neg_step_size;
    return;
  }
  const double bias_correction1 = 1 - std::pow(static_cast<double>(spec_.beta1), static_cast<double>(step));
  const double bias_correction2 = 1 - std::pow(static_cast<double>(spec_.beta2), static_cast<double>(step));
  *sqrt_bc2 = static_cast<float>(std::sqrt(bias_correction2));
  *neg_step_size = static_cast<float>(-(static_cast<double>(spec_.lr) / bias_correction1));
  e = {step, spec_.beta1, spec_.beta2, spec_.lr, *sqrt_bc2, *neg_step_size};
}

void RowOptimizer::ApplyAdam(float* w, float* state, const float* grad) const {
  float* m = state;
  float* v = state + dim_;
  int64_t step;
  std::memcpy(&step, state + 2 * dim_, sizeof(step));
  ++step;
  std::memcpy(state + 2 * dim_, &step, sizeof(step));

  float sqrt_bc2, neg_step_size;
  AdamScalars(step, &sqrt_bc2, &neg_step_size);

  const float wd = weight_decay_, eps = eps_, b1 = beta1_, b2 = beta2_;
  const float omb1 = one_minus_beta1_, omb2 = one_minus_beta2_;
  for (int j = 0; j < dim_; ++j) {
    float g = grad[j];
    if (wd != 0.f) g = g + wd * w[j];
    m[j] = m[j] * b1;
    m[j] = m[j] + omb1 * g;
    v[j] = v[j] * b2;
    v[j] = v[j] + omb2 * g * g;
    const float denom = std::sqrt(v[j]) / sqrt_bc2 + eps;
    w[j] = w[j] + neg_step_size * m[j] / denom;
  }
}

// Row-wise Adagrad (FBGEMM's EXACT_ROWWISE_ADAGRAD, weight decay as L2 on the gradient):
//   g = grad + weight_decay * w;  acc += mean_j(g_j^2);  w_j -= lr * g_j / (sqrt(acc) + eps).
void RowOptimizer::ApplyRowwiseAdagrad(float* w, float* acc, const float* grad) const {
  const float wd = weight_decay_, neg_lr = neg_lr_, eps = eps_;
  float sum_sq = 0.f;
  for (int j = 0; j < dim_; ++j) {
    float g = grad[j];
    if (wd != 0.f) g = g + wd * w[j];
    sum_sq += g * g;
  }
  acc[0] = acc[0] + sum_sq / static_cast<float>(dim_);
  const float scale = neg_lr / (std::sqrt(acc[0]) + eps);
  for (int j = 0; j < dim_; ++j) {
    float g = grad[j];
    if (wd != 0.f) g = g + wd * w[j];
    w[j] = w[j] + scale * g;
  }
}

// FTRL-Proximal, per coordinate (McMahan et al. 2013, Algorithm 1; TensorFlow's ApplyFtrl):
//   n' = n + g^2;  sigma = (n'^-p - n^-p) / alpha;  z += g - sigma * w;  n = n'
//   w = |z| <= l1 ? 0 : -(z - sign(z) * l1) / ((beta + n^-p) / alpha + 2 * l2)
// with p = lr_power (-0.5: square roots). Computed in double, state stored as float.
void RowOptimizer::ApplyFtrl(float* w, float* state, const float* grad) const {
  float* z = state;
  float* n = state + dim_;
  const double alpha = spec_.lr, beta = spec_.ftrl_beta, l1 = spec_.l1, l2 = spec_.l2;
  const double p = spec_.lr_power, wd = spec_.weight_decay;
  const bool sqrt_power = p == -0.5;
  auto pow_neg_p = [&](double x) { return sqrt_power ? std::sqrt(x) : std::pow(x, -p); };
  for (int j = 0; j < dim_; ++j) {
    const double g = static_cast<double>(grad[j]) + wd * w[j];
    const double n_old = n[j], n_new = n_old + g * g;
    const double sigma = (pow_neg_p(n_new) - pow_neg_p(n_old)) / alpha;
    const double z_new = z[j] + g - sigma * w[j];
    z[j] = static_cast<float>(z_new);
    n[j] = static_cast<float>(n_new);
    if (std::fabs(z_new) <= l1) {
      w[j] = 0.f;
    } else {
      const double sign = z_new < 0 ? -1.0 : 1.0;
      w[j] = static_cast<float>(-(z_new - sign * l1) / ((beta + pow_neg_p(n_new)) / alpha + 2 * l2));
    }
  }
}

}  // namespace shardrec::ps
