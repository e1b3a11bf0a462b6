#pragma once
// SharedBottom (Caruana, 1997), as Torch-RecHub's models/multi_task/shared_bottom.py:
//   x = Flatten(features)                       [B, sum of embedding dims + #dense]
//   h = bottom MLP(x)                           per layer Linear -> BatchNorm1d -> act -> Dropout
//   out[:, t] = tower_t(h)                      hidden layers, then Linear(., 1)
// forward returns [B, T]: logits of classification tasks, values of regression tasks (see
// MultiTaskModel for Predict and Loss). Defaults are the reference's Census example: bottom
// [117] (sized there to match MMoE's parameter count), towers [8].
#include <vector>

#include "models/feature_inputs.h"
#include "models/layers.h"
#include "models/multitask_layers.h"
#include "models/multitask_model.h"

namespace shardrec::config {
class SharedBottom;
}

namespace shardrec::models {

class SharedBottom : public MultiTaskModel {
 public:
  // Empty features take every sparse, mean/sum-pooled sequence and dense feature. The tasks
  // follow schema.label_columns (see ResolveTasks). Throws ConfigError.
  SharedBottom(const config::SharedBottom& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // [B, T]
  std::vector<torch::Tensor> SharedLayerWeights() override;  // the bottom's last Linear

  const FeatureGroup& features() const { return features_; }
  MLP& bottom() { return bottom_; }
  TaskTowers& towers() { return towers_; }

 private:
  FeatureGroup features_;
  MLP bottom_{nullptr};
  TaskTowers towers_{nullptr};
  torch::Tensor bottom_last_weight_;
};

}  // namespace shardrec::models
