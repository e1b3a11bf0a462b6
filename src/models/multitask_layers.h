#pragma once
// Building blocks of the multi-task models: groups of experts, gates over experts, the mixture of
// experts a gate picks, and per-task towers. They compute what the reference's MLP-based experts,
// gates and towers compute (Torch-RecHub models/multi_task/mmoe.py, ple.py), batched:
//
//   ExpertGroup: E experts that read the same input, each an MLP without output layer (per hidden
//     layer Linear -> BatchNorm1d -> activation -> Dropout). The first layers of all experts are
//     one Linear(input, E*H) (one GEMM instead of E small ones); deeper layers are one batched
//     matmul over the experts. BatchNorm1d over the E*H columns is E independent batch norms.
//   Gate: G gates over E experts that read the same input, each Linear -> BatchNorm1d -> softmax
//     (the reference's MLP([E], activation="softmax")), fused the same way.
//   MixExperts: per gate, sum_e gate_e * expert_e, one batched matmul for all gates.
//   TaskTowers: one MLP per task with output layer, each giving that task's logit (or value).
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "models/layers.h"

namespace shardrec::config {
class Mlp;
class MultiTaskGate;
}

namespace shardrec::models {

// ---------------------------------------------------------------------------------------------
// Experts

// The activation of a group's experts, on [B, E, H]. Parameter-free kinds work elementwise;
// PReLU has one slope per expert (init 0.25, torch's PReLU over dimension 1); Dice runs one Dice
// per expert (its statistics are per row and expert, its alpha per expert), as E separate
// reference MLPs would.
class ExpertActivationImpl : public torch::nn::Module {
 public:
  ExpertActivationImpl(ActivationKind kind, int64_t num_experts);
  // May overwrite x (a fresh batch-norm output that nothing else holds).
  torch::Tensor forward_(torch::Tensor x);

  ActivationKind kind() const { return kind_; }
  torch::Tensor prelu_weight;  // [E], PReLU only

 private:
  ActivationKind kind_;
  Activation elementwise_{nullptr};
  std::vector<Dice> dice_;
};
TORCH_MODULE(ExpertActivation);

// E experts on one input [B, input_dim] -> [B, E, H] (H = options.dims.back()).
// Parameters: linear0 (weight [E*H0, input_dim]: rows e*H0 .. (e+1)*H0 - 1 are expert e's first
// Linear), then per deeper layer l: weight<l> [E, H_l, H_{l-1}] and bias<l> [E, H_l] (expert e's
// Linear is weight<l>[e], bias<l>[e]); bn<l> is BatchNorm1d(E*H_l) with expert e at columns
// e*H_l .. (e+1)*H_l - 1; act<l>. Every Linear is initialised like torch's (U(+-1/sqrt(fan_in))).
// Throws ConfigError for num_experts < 1, no hidden layer, or bad dims/dropout.
class ExpertGroupImpl : public torch::nn::Module {
 public:
  ExpertGroupImpl(int64_t input_dim, int64_t num_experts, MlpOptions options, const std::string& field);
  torch::Tensor forward(const torch::Tensor& x);

  int64_t num_experts() const { return num_experts_; }
  int64_t output_dim() const { return options_.dims.back(); }
  const MlpOptions& options() const { return options_; }
  // The weights of the experts' last Linear ([E*H, in] for one layer, else [E, H, H_prev]).
  torch::Tensor last_weight() const;

 private:
  struct Layer {
    torch::nn::Linear linear{nullptr};  // layer 0
    torch::Tensor weight, bias;         // layers >= 1
    torch::nn::BatchNorm1d bn{nullptr};
    ExpertActivation act{nullptr};
    int64_t width = 0;
    double dropout = 0;
  };
  int64_t num_experts_;
  MlpOptions options_;
  std::vector<Layer> layers_;
};
TORCH_MODULE(ExpertGroup);

// ---------------------------------------------------------------------------------------------
// Gates

struct GateOptions {
  bool softmax = true;     // false: sigmoid
  bool batch_norm = true;  // the reference's gate MLP has one
};
GateOptions GateOptionsFromConfig(const config::MultiTaskGate& config);

// G gates over E experts on one input [B, input_dim] -> weights [B, G, E]. Parameters: linear
// (weight [G*E, input_dim], rows g*E .. (g+1)*E - 1 are gate g's) and bn (BatchNorm1d(G*E)).
class GateImpl : public torch::nn::Module {
 public:
  GateImpl(int64_t input_dim, int64_t num_gates, int64_t num_experts, GateOptions options);
  torch::Tensor forward(const torch::Tensor& x);

  int64_t num_gates() const { return num_gates_; }
  int64_t num_experts() const { return num_experts_; }

 private:
  int64_t num_gates_, num_experts_;
  GateOptions options_;
  torch::nn::Linear linear_{nullptr};
  torch::nn::BatchNorm1d bn_{nullptr};
};
TORCH_MODULE(Gate);

// gates [B, G, E], experts [B, E, H] -> [B, G, H]: row g is sum_e gates[:, g, e] * experts[:, e].
torch::Tensor MixExperts(const torch::Tensor& gates, const torch::Tensor& experts);

// ---------------------------------------------------------------------------------------------
// Shared MLPs and towers

// The weight of an MLP's last hidden Linear (GradNorm's W for a shared bottom); undefined when
// the MLP has no hidden layer.
torch::Tensor LastHiddenWeight(MLP& mlp);

// One MLP with output layer per task (submodules tower0, tower1, ...).
class TaskTowersImpl : public torch::nn::Module {
 public:
  // `per_task` holds one MlpOptions per task; output_layer is forced on.
  TaskTowersImpl(int64_t input_dim, std::vector<MlpOptions> per_task);
  // x: [B, input_dim] read by every tower, or [B, T, input_dim] with row block t for tower t.
  // Returns [B, T].
  torch::Tensor forward(const torch::Tensor& x);
  // per_task[t] [B, input_dim] for tower t. Returns [B, T].
  torch::Tensor ForwardEach(const std::vector<torch::Tensor>& per_task);

  int64_t num_tasks() const { return static_cast<int64_t>(towers_.size()); }
  MLP& tower(size_t t) { return towers_[t]; }

 private:
  std::vector<MLP> towers_;
};
TORCH_MODULE(TaskTowers);

// The towers' options from a config's `towers` list: none -> `default_dims` for every task, one
// entry -> that for every task, else one entry per task. Throws ConfigError (naming `field`) for
// another count.
std::vector<MlpOptions> TowerOptions(const std::vector<config::Mlp>& towers, int num_tasks,
                                     const std::vector<int64_t>& default_dims, const std::string& field);

}  // namespace shardrec::models
