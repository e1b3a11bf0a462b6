#pragma once
// FiBiNET (Huang et al., RecSys 2019), as Torch-RecHub's models/ranking/fibinet.py:
//   v      = Stack(interacting fields)                 [B, F, D]
//   v_se   = SENET(v)                                  [B, F, D]  (interaction_layers.h)
//   p      = Bilinear(v), q = Bilinear(v_se)           [B, P, D] each, P = F (F - 1) / 2, one
//                                                      shared bilinear layer as in the reference
//   logit  = MLP(cat[p.flatten(1), q.flatten(1), dense values])
// SENET: mean over D -> Linear(F, max(1, F / r)) -> ReLU -> Linear(., F) -> ReLU -> scale fields.
// Bilinear: (W v_i) (.) v_j over all pairs, W shared (field_all), per left field (field_each) or
// per pair (field_interaction).
//
// Differences from the reference:
// - Dense features: the reference takes dense features in its `features` list, but its
//   EmbeddingLayer(squeeze_dim=False) returns only the sparse stack, so their values are silently
//   dropped (MLP input F (F - 1) D). Here the listed dense features (all of them when the list is
//   empty) are appended to the MLP input. Listing only sparse features reproduces the reference.
// - field_each: the reference also creates W for the last field, which is never the left side of
//   a pair and so never learns; it is left out here (same outputs, one dead matrix fewer).
// Everything is batched: SENET and the bilinear layer run as a few matmuls over all fields or
// pairs (no loop over pairs or fields in forward).
#include "models/feature_inputs.h"
#include "models/interaction_layers.h"
#include "models/layers.h"
#include "models/model.h"

namespace shardrec::config {
class FiBiNet;
}

namespace shardrec::models {

class FiBiNet : public Model {
 public:
  // `features` lists sparse, mean/sum-pooled sequence and dense features; empty means all of
  // them. The embedded ones (at least two, one dimension) interact; the dense ones join the MLP
  // input. reduction_ratio must be >= 1; bilinear_type one of field_all, field_each,
  // field_interaction. The MLP defaults to dims [256, 128]. Throws ConfigError naming the
  // model.fibinet field.
  FiBiNet(const config::FiBiNet& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // logits [B]

  const FeatureGroup& fields() const { return fields_; }
  bool has_dense() const { return has_dense_; }
  const FeatureGroup& dense_features() const { return dense_; }  // valid when has_dense()
  Senet& senet() { return senet_; }
  BilinearInteraction& bilinear() { return bilinear_; }
  MLP& mlp() { return mlp_; }

 private:
  FeatureGroup fields_, dense_;
  bool has_dense_ = false;
  Senet senet_{nullptr};
  BilinearInteraction bilinear_{nullptr};
  MLP mlp_{nullptr};
};

}  // namespace shardrec::models
