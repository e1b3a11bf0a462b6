#pragma once
// DCN-V2 (Wang et al., WWW 2021), as Torch-RecHub's models/ranking/dcn_v2.py:
//   x     = Flatten(features) [B, D]: embeddings in list order, then dense values (the reference's
//           EmbeddingLayer(squeeze_dim=True));
//   cross = a cross network over x (see cross_layers.h), chosen by cross_parameterization:
//             MATRIX + use_low_rank_mixture (default): LowRankMixtureCrossNet, E = num_experts
//               experts of rank r = low_rank (the reference's CrossNetMix);
//             MATRIX without the mixture: MatrixCrossNet, x_{l+1} = x0 (.) (W_l x_l + b_l) + x_l;
//             VECTOR (the seed's "vector"): DCN's VectorCrossNet, x_{l+1} = x0 * (x_l . w_l) + b_l + x_l;
//   logit = LR([cross, MLP(x)])   structure PARALLEL (default)
//           LR(MLP(cross))        structure STACKED
//           LR(cross)             structure CROSSNET_ONLY (no MLP; `mlp` is unused)
// The MLP has no output layer. low_rank and num_experts only matter for the mixture.
// Deliberate difference: the full-rank matrix layer adds b_l inside the product, as the paper
// (and the reference's own CrossNetMix) do; the reference's CrossNetV2 adds it outside.
#include "models/cross_layers.h"
#include "models/feature_inputs.h"
#include "models/layers.h"
#include "models/model.h"

namespace shardrec::config {
class DcnV2;
}

namespace shardrec::models {

class DcnV2 : public Model {
 public:
  enum class Structure { kParallel, kStacked, kCrossnetOnly };

  // Empty `features` take every sparse, mean/sum-pooled sequence and dense feature. The MLP
  // defaults to dims [256, 128] when the config gives none. Throws ConfigError for cross_num,
  // low_rank or num_experts < 1 (see also ResolveFeatures, MLPImpl).
  DcnV2(const config::DcnV2& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // logits [B]

  const FeatureGroup& features() const { return features_; }
  Structure structure() const { return structure_; }
  CrossNet& cross() { return *cross_; }
  MLP& mlp() { return mlp_; }  // null for kCrossnetOnly
  LR& linear() { return linear_; }

 private:
  FeatureGroup features_;
  Structure structure_;
  std::shared_ptr<CrossNet> cross_;
  MLP mlp_{nullptr};
  LR linear_{nullptr};
};

}  // namespace shardrec::models
