#pragma once
// MIND (Li et al., CIKM 2019), as Torch-RecHub's models/matching/mind.py with its
// CapsuleNetwork (basic/layers.py, bilinear_type 0):
//   interests = CapsuleRouting(history)  [B, I, H]   (shared bilinear map, routing_iterations,
//               routing logits initialised N(0, 1), agreement updates on a detached copy, squash)
//   user_k = L2norm(W^T [Flatten(user features); interest_k])   [B, I, D]   (W: [U + H, D], no
//            bias)
//   item = L2norm(item embedding) [N, D]
//   training score (label-aware attention): every candidate is scored with the interest whose
//            dot product with the row's positive item is largest; / temperature.
//   evaluation: every interest queries (a candidate's score is its best interest's), so
//            retrieval merges the interests' results.
// Differences from the reference, on purpose: padding is masked before the routing softmax (see
// CapsuleRouting); hidden_size sets the capsule width; the routing softmax axis is selectable
// (the reference's code: over positions; the paper: over interests); routing_seed fixes the
// initial routing logits for repeatable interests; W starts U(-1/2, 1/2), not U(0, 1) (see mind.cc).
#include "models/feature_inputs.h"
#include "models/match_model.h"
#include "models/sequence_recall_layers.h"

namespace shardrec::config {
class Mind;
}

namespace shardrec::models {

class Mind : public MatchModel {
 public:
  Mind(const config::Mind& config, const data::FeatureSchema& schema);

  torch::Tensor UserEmbedding(const ModelInput& input) override;  // [B, I, D], unit norm
  torch::Tensor ItemEmbedding(const ModelInput& input) override;  // [N, D], unit norm
  // Training: label-aware attention. The row's positive is candidate 0 of its own candidates
  // (items [B, C, D]), or candidate b of shared in-batch candidates (items [1, C >= B, D]).
  // Evaluation (and other shapes): the default best-interest score.
  torch::Tensor Score(const torch::Tensor& users, const torch::Tensor& items) override;
  double temperature() const override { return temperature_; }
  int num_interests() const override { return static_cast<int>(routing_->options().num_interests); }
  const std::vector<int>& user_features() const override { return user_tower_features_; }
  const std::vector<int>& item_features() const override { return item_tower_features_; }

  // The routing's initial logits for a batch of `batch` rows and histories of `length` columns:
  // [1, I, length] from the fixed draw when routing_seed is set, else N(0, 1) [batch, I, length]
  // from torch's generator.
  torch::Tensor InitialRoutingLogits(int64_t batch, int64_t length) const;

  const HistoryItemFeatures& features() const { return features_; }
  CapsuleRouting& routing() { return routing_; }
  torch::Tensor projection;  // W [U + H, D]

 private:
  HistoryItemFeatures features_;
  FeatureGroup user_;
  std::vector<int> user_tower_features_, item_tower_features_;
  double temperature_;
  CapsuleRouting routing_{nullptr};
  // With routing_seed: N(0, 1) [I, max_len]; column j is the logit of the item max_len - 1 - j
  // before the newest, so a history's logits do not depend on its padding.
  torch::Tensor fixed_logits_;
};

}  // namespace shardrec::models
