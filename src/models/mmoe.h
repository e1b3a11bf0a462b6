#pragma once
// MMoE, Multi-gate Mixture-of-Experts (Ma et al., KDD 2018), as Torch-RecHub's
// models/multi_task/mmoe.py:
//   x = Flatten(features)                                  [B, D]
//   expert_e = MLP_e(x), e < E (no output layer)           [B, E, H]
//   gate_t = softmax(BatchNorm1d(Linear_t(x))) over E      [B, T, E] (the reference's gate is its
//                                                          MLP([E], activation="softmax"))
//   out[:, t] = tower_t(sum_e gate_t,e * expert_e)
// forward returns [B, T]: logits of classification tasks, values of regression tasks. The gate's
// BatchNorm1d and its softmax are the reference's; `gate { batch_norm: false }` gives the paper's
// softmax(W x), `activation: SIGMOID` independent gate weights. Defaults are the reference's
// Census example: 8 experts of [16], towers [8].
#include <vector>

#include "models/feature_inputs.h"
#include "models/multitask_layers.h"
#include "models/multitask_model.h"

namespace shardrec::config {
class Mmoe;
}

namespace shardrec::models {

class Mmoe : public MultiTaskModel {
 public:
  // Empty features take every sparse, mean/sum-pooled sequence and dense feature. Throws
  // ConfigError.
  Mmoe(const config::Mmoe& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // [B, T]
  std::vector<torch::Tensor> SharedLayerWeights() override;  // every expert's last Linear

  const FeatureGroup& features() const { return features_; }
  ExpertGroup& experts() { return experts_; }
  Gate& gates() { return gates_; }  // gate t is gate row t
  TaskTowers& towers() { return towers_; }

 private:
  FeatureGroup features_;
  ExpertGroup experts_{nullptr};
  Gate gates_{nullptr};
  TaskTowers towers_{nullptr};
};

}  // namespace shardrec::models
