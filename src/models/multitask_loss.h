#pragma once
// How the per-task losses L_i of a multi-task model (each a mean over the batch) become the one
// loss the trainer backpropagates. Owned by the model, so UWL's and GradNorm's learned weights are
// ordinary parameters of the model, trained by the dense optimizer like every other weight, and
// the trainer needs nothing special (the reference needs its MTLTrainer for this).
//
//   WEIGHTED_SUM: sum_i c_i L_i with the configured weights c_i (default 1; the reference's
//     MTLTrainer averages, i.e. c_i = 1/T, which Adam trains alike).
//   UWL (Kendall et al., CVPR 2018), exactly the reference's form (trainers/mtl_trainer.py):
//     sum_i 2 L_i exp(-s_i) + s_i, s_i = max(w_i, 0), parameter w [T] starting at 0. The clamp
//     keeps every task weight 2 exp(-s_i) <= 2; uwl_clamp = false drops it (Kendall's form).
//   GRADNORM (Chen et al., ICML 2018): the model trains on sum_i w_i L_i (parameter w [T],
//     starting at the configured weights), and w trains on
//       L_grad = sum_i |G_i - mean(G) * r_i^alpha|,  G_i = ||d(w_i L_i)/dW|| = w_i ||dL_i/dW||,
//       r_i = (L_i / L_i(0)) / mean_j(L_j / L_j(0)),
//     W the weights of the model's last shared layer, L_i(0) the task losses of the first training
//     step, the target mean(G) r_i^alpha held constant (no gradient). dL_grad/dw_i =
//     sign(G_i - target_i) ||dL_i/dW||, because ||dL_i/dW|| does not depend on w: so the norms
//     come from one torch::autograd::grad per task (no double backward). The returned loss carries
//     that gradient to w (its value is unchanged), so loss.backward() leaves on every model
//     weight the gradient of sum_i w_i L_i and on w the GradNorm gradient. At the next training
//     call w is floored at 1e-4 and rescaled to sum to T (the reference renormalises right after
//     the optimizer step; the weights used by every forward are the same).
//     Differences from the reference (utils/mtl.py gradnorm), both its defects: the reference's
//     target is mean(G) * mean_i(L_i / L_i(0))^alpha, the same for every task, so the relative
//     training rates never enter; and its loop picks share_layers[-0] = the first embedding table
//     as the "last shared layer". Here targets use each task's r_i, and W is the last shared
//     dense layer the model names.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

namespace shardrec::config {
class MultiTaskLoss;
}

namespace shardrec::models {

class MultiTaskLossImpl : public torch::nn::Module {
 public:
  enum class Kind { kWeightedSum, kUwl, kGradNorm };

  // `field` names the config message in errors (e.g. "model.mmoe.loss"). Throws ConfigError for a
  // weights list whose length is not num_tasks, negative weights, GradNorm weights that are all 0,
  // or a negative alpha.
  MultiTaskLossImpl(const config::MultiTaskLoss& config, int num_tasks, const std::string& field);

  // task_losses: [T], part of the autograd graph. shared: GradNorm's W (one or more tensors that
  // together form the last shared layer); ignored by the other kinds. GradNorm's weight update
  // happens only in training mode with grad mode on; otherwise its loss is sum_i w_i L_i.
  torch::Tensor forward(const torch::Tensor& task_losses, const std::vector<torch::Tensor>& shared = {});

  Kind kind() const { return kind_; }
  double gradnorm_alpha() const { return alpha_; }
  // The factor each task's loss gets now: c_i, 2 exp(-s_i) or w_i. [T], no gradient.
  torch::Tensor task_weights() const;

  // Parameters and buffers (defined only for their kind).
  torch::Tensor fixed_weights;   // WEIGHTED_SUM: buffer [T]
  torch::Tensor log_variance;    // UWL: parameter w [T]
  torch::Tensor gradnorm_weights;  // GRADNORM: parameter w [T]
  torch::Tensor initial_losses;  // GRADNORM: buffer [T], L_i(0); negative until the first step

 private:
  torch::Tensor GradNormLoss(const torch::Tensor& task_losses, const std::vector<torch::Tensor>& shared);

  Kind kind_;
  int num_tasks_;
  double alpha_ = 0;
  bool uwl_clamp_ = true;
  bool has_initial_losses_ = false;
};
TORCH_MODULE(MultiTaskLoss);

}  // namespace shardrec::models
