#pragma once
// PLE, Progressive Layered Extraction (Tang et al., RecSys 2020), as Torch-RecHub's
// models/multi_task/ple.py: num_layers levels of CGC (Customized Gate Control), then towers.
//   Level inputs: x_t for each task t and x_s for the shared path; at level 1 all are
//   Flatten(features), later levels read the previous level's outputs ([B, H]).
//   Per level (S = num_experts specific experts per task, Sh = num_shared_experts; every expert
//   an MLP without output layer, every gate Linear -> BatchNorm1d -> softmax as in MMoE):
//     task t:  its S experts on x_t, gate_t(x_t) over [its S experts, the Sh shared experts]
//              -> next x_t = sum of gate-weighted experts;
//     shared:  Sh experts on x_s; except at the last level, a shared gate(x_s) over all T*S + Sh
//              experts (task 0's, task 1's, ..., then the shared ones) -> next x_s.
//   out[:, t] = tower_t(x_t after the last level).
// forward returns [B, T]: logits of classification tasks, values of regression tasks. Defaults
// are the reference's Census example: one level, 2 specific and 1 shared expert of [16], towers [8].
#include <string>
#include <vector>

#include "models/feature_inputs.h"
#include "models/multitask_layers.h"
#include "models/multitask_model.h"

namespace shardrec::config {
class Ple;
}

namespace shardrec::models {

// One CGC level. Submodules: specific<t> (ExpertGroup of S), shared (ExpertGroup of Sh; absent
// when Sh = 0), gate<t> (Gate over S + Sh), shared_gate (Gate over T*S + Sh; not at the last level).
class CgcLevelImpl : public torch::nn::Module {
 public:
  CgcLevelImpl(int64_t input_dim, int num_tasks, int64_t num_specific, int64_t num_shared, const MlpOptions& expert,
               GateOptions gate, bool last, const std::string& field);
  // inputs: T task inputs, then the shared input, each [B, input_dim]. Returns the T task
  // outputs, then (except at the last level) the shared output, each [B, H].
  std::vector<torch::Tensor> forward(const std::vector<torch::Tensor>& inputs);

  int64_t output_dim() const { return specific_[0]->output_dim(); }
  ExpertGroup& specific(size_t task) { return specific_[task]; }
  ExpertGroup& shared() { return shared_; }
  Gate& gate(size_t task) { return gates_[task]; }
  Gate& shared_gate() { return shared_gate_; }

 private:
  std::vector<ExpertGroup> specific_;
  ExpertGroup shared_{nullptr};
  std::vector<Gate> gates_;
  Gate shared_gate_{nullptr};
};
TORCH_MODULE(CgcLevel);

class Ple : public MultiTaskModel {
 public:
  // Empty features take every sparse, mean/sum-pooled sequence and dense feature. Throws
  // ConfigError.
  Ple(const config::Ple& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // [B, T]
  // The last level's shared experts' last Linear; none when num_shared_experts = 0.
  std::vector<torch::Tensor> SharedLayerWeights() override;

  const FeatureGroup& features() const { return features_; }
  CgcLevel& level(size_t l) { return levels_[l]; }
  size_t num_levels() const { return levels_.size(); }
  TaskTowers& towers() { return towers_; }

 private:
  FeatureGroup features_;
  std::vector<CgcLevel> levels_;
  TaskTowers towers_{nullptr};
};

}  // namespace shardrec::models
