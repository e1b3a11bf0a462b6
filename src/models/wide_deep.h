#pragma once
// Wide & Deep (Cheng et al., DLRS 2016), as Torch-RecHub's models/ranking/widedeep.py:
//   logit = LR(Flatten(wide features)) + MLP(Flatten(deep features)).
#include "models/feature_inputs.h"
#include "models/layers.h"
#include "models/model.h"

namespace shardrec::config {
class WideDeep;
}

namespace shardrec::models {

class WideDeep : public Model {
 public:
  // Empty feature lists take every sparse, mean/sum-pooled sequence and dense feature. The MLP
  // defaults to dims [256, 128] when the config gives none. Throws ConfigError (see
  // ResolveFeatures, MLPImpl).
  WideDeep(const config::WideDeep& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // logits [B]

  const FeatureGroup& wide_features() const { return wide_; }
  const FeatureGroup& deep_features() const { return deep_; }
  LR& linear() { return linear_; }
  MLP& mlp() { return mlp_; }

 private:
  FeatureGroup wide_, deep_;
  LR linear_{nullptr};
  MLP mlp_{nullptr};
};

}  // namespace shardrec::models
