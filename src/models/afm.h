#pragma once
// AFM, the Attentional Factorization Machine (Xiao et al., IJCAI 2017), as Torch-RecHub's
// models/ranking/afm.py but with the paper's attention:
//   v     = Stack(features)                                   [B, F, D]
//   logit = LR(v.flatten(1))                                  first order, Linear(F * D, 1)
//         + p^T Dropout(sum_{i<j} a_ij (v_i (.) v_j))         AttentionalPooling (interaction_layers.h)
//   a_ij  = softmax over all pairs i < j of h^T ReLU(W (v_i (.) v_j) + b)
//
// Deliberate differences from the reference:
// - Attention (reference defect, fixed): the reference first sums the pairs (FM with
//   reduce_sum=False, [B, D]) and applies its softmax to that one vector's single score, so every
//   weight is 1, W, b and h never learn, and the model is LR + p^T sum_{i<j} v_i (.) v_j. Here
//   the softmax runs over the P = F (F - 1) / 2 pairs of each row, as the paper intends.
// - attention_units (the seed's list, the reference's t = 64) may give several attention layers,
//   each Linear -> ReLU; one layer (the default [64]) is the paper's network.
// - dropout_rate (the seed's parameter; the reference has none) drops elements of the pooled
//   interaction vector during training, as the authors' code and DeepCTR's afm_dropout do.
#include "models/feature_inputs.h"
#include "models/interaction_layers.h"
#include "models/layers.h"
#include "models/model.h"

namespace shardrec::config {
class Afm;
}

namespace shardrec::models {

class AFM : public Model {
 public:
  // Empty features take every sparse and mean/sum-pooled sequence feature; they must share one
  // embedding dimension and be at least two. Throws ConfigError naming the model.afm field.
  AFM(const config::Afm& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // logits [B]

  const FeatureGroup& fields() const { return fields_; }
  LR& linear() { return linear_; }
  AttentionalPooling& pooling() { return pooling_; }

 private:
  FeatureGroup fields_;
  LR linear_{nullptr};
  AttentionalPooling pooling_{nullptr};
};

}  // namespace shardrec::models
