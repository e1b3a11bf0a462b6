#pragma once
// How a row learns: the server-side optimizer applied to one row on push. Each row carries its own
// optimizer state right after its weights (SGD: none; Adagrad: sum[dim]; Adam: m[dim], v[dim] and
// a per-row step count; row-wise Adagrad: one accumulator; FTRL: z[dim], n[dim]), so rows are
// independent and an untouched row never moves ("lazy").
// SGD, Adagrad and Adam follow LibTorch 1.13's torch::optim::{SGD, Adagrad, Adam}, operation for
// operation, so a row matches the row of a dense torch embedding trained on the same gradients.
// Row-wise Adagrad follows FBGEMM's EXACT_ROWWISE_ADAGRAD; FTRL-Proximal follows McMahan et al.
// 2013 with TensorFlow's parameterization (see OptimizerSpec).
#include <cstdint>

#include "ps/table_spec.h"

namespace shardrec::ps {

class RowOptimizer {
 public:
  RowOptimizer(const OptimizerSpec& spec, int dim);

  // Floats of state stored after the `dim` weights of a row.
  int state_floats() const { return state_floats_; }

  // Writes the state of a newly created row to state[state_floats()].
  void InitState(float* state) const;

  // One optimizer step of one row: weights[dim] and state[state_floats()] updated in place from
  // grad[dim] (the row's summed gradient of one batch).
  void Apply(float* weights, float* state, const float* grad) const;

 private:
  void ApplySgd(float* w, const float* grad) const;
  void ApplyAdagrad(float* w, float* sum, const float* grad) const;
  void ApplyAdam(float* w, float* state, const float* grad) const;
  void AdamScalars(int64_t step, float* sqrt_bc2, float* neg_step_size) const;
  void ApplyRowwiseAdagrad(float* w, float* acc, const float* grad) const;
  void ApplyFtrl(float* w, float* state, const float* grad) const;

  OptimizerSpec spec_;
  int dim_;
  int state_floats_;
  // Scalars as torch hands them to its float kernels: computed in double, cast to float.
  float neg_lr_;          // -lr (SGD alpha, Adagrad -clr with lr_decay 0)
  float weight_decay_;    // grad.add(p, weight_decay)
  float eps_;
  float beta1_, beta2_;   // exp_avg.mul_(beta1), exp_avg_sq.mul_(beta2)
  float one_minus_beta1_, one_minus_beta2_;
};

}  // namespace shardrec::ps
