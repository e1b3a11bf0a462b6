#pragma once
// DCN, Deep & Cross Network (Wang et al., ADKDD 2017), as Torch-RecHub's models/ranking/dcn.py:
//   x     = Flatten(features) [B, D]: embeddings in list order, then dense values (the reference's
//           EmbeddingLayer(squeeze_dim=True); dense features enter as raw values);
//   cross = VectorCrossNet(x), cross_num layers x_{l+1} = x0 * (x_l . w_l) + b_l + x_l;
//   deep  = MLP(x) without output layer (Linear -> BatchNorm -> activation -> dropout per layer);
//   logit = LR([cross, deep]).
// No deliberate differences from the reference.
#include "models/cross_layers.h"
#include "models/feature_inputs.h"
#include "models/layers.h"
#include "models/model.h"

namespace shardrec::config {
class Dcn;
}

namespace shardrec::models {

class Dcn : public Model {
 public:
  // Empty `features` take every sparse, mean/sum-pooled sequence and dense feature. The MLP
  // defaults to dims [256, 128] when the config gives none. Throws ConfigError for cross_num < 1
  // (see also ResolveFeatures, MLPImpl).
  Dcn(const config::Dcn& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // logits [B]

  const FeatureGroup& features() const { return features_; }
  VectorCrossNet& cross() { return *cross_; }
  MLP& mlp() { return mlp_; }
  LR& linear() { return linear_; }

 private:
  FeatureGroup features_;
  std::shared_ptr<VectorCrossNet> cross_;
  MLP mlp_{nullptr};
  LR linear_{nullptr};
};

}  // namespace shardrec::models
