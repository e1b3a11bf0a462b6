#pragma once
// DeepFM (Guo et al., IJCAI 2017), as Torch-RecHub's models/ranking/deepfm.py:
//   v = Stack(fm features) [B, F, D];
//   logit = LR(v.flatten(1)) + FM(v) + MLP(Flatten(deep features)).
// The first-order term is a Linear over the flattened FM embeddings, as in the reference.
#include "models/feature_inputs.h"
#include "models/layers.h"
#include "models/model.h"

namespace shardrec::config {
class DeepFM;
}

namespace shardrec::models {

class DeepFM : public Model {
 public:
  // Empty fm_features take every sparse and mean/sum-pooled sequence feature (they must share one
  // dimension); empty deep_features take those and every dense feature. The MLP defaults to dims
  // [256, 128] when the config gives none. Throws ConfigError (see ResolveFeatures, MLPImpl).
  DeepFM(const config::DeepFM& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // logits [B]

  const FeatureGroup& fm_features() const { return fm_features_; }
  const FeatureGroup& deep_features() const { return deep_; }
  LR& linear() { return linear_; }
  FM& fm() { return fm_; }
  MLP& mlp() { return mlp_; }

 private:
  FeatureGroup fm_features_, deep_;
  LR linear_{nullptr};
  FM fm_{nullptr};
  MLP mlp_{nullptr};
};

}  // namespace shardrec::models
