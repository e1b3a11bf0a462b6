#pragma once
// GRU4Rec (Hidasi et al., ICLR 2016) as a two-tower recall model, as Torch-RecHub's
// models/matching/gru4rec.py:
//   user: h = last hidden state of the top layer of a GRU without bias (num_layers, hidden_size)
//         over the history embeddings (Dropout on them while training);
//         u = L2norm(MLP(cat(Flatten(user features), h)))  (MLP without output layer, [B, D]);
//   item: L2norm(item embedding) [N, D];
//   score(u, item) = <u, item> / temperature.
// Differences from the reference, on purpose:
//  - scores are [B, 1 + K] (positive and negatives): the reference's forward returns a [B, D]
//    product instead (models.md, defect);
//  - hidden_size is a parameter (the reference ties it to the embedding dim) and dropout_rate
//    drops history embeddings and GRU layer outputs (the seed's GRU4Rec dropout_rate);
//  - histories are right-aligned (padding first). A GRU without bias keeps a zero state through
//    zero inputs exactly (r = z = 1/2, n = tanh(0) = 0), so the state after the padding is the
//    initial zero state and the result does not depend on the padding.
#include "models/feature_inputs.h"
#include "models/layers.h"
#include "models/match_model.h"
#include "models/sequence_recall_layers.h"

#include <torch/nn/modules/rnn.h>

namespace shardrec::config {
class Gru4Rec;
}

namespace shardrec::models {

class Gru4Rec : public MatchModel {
 public:
  // Throws ConfigError (field paths under model.gru4rec) for unresolvable features, bad sizes, or
  // an MLP whose last width is not the item embedding dim.
  Gru4Rec(const config::Gru4Rec& config, const data::FeatureSchema& schema);

  torch::Tensor UserEmbedding(const ModelInput& input) override;  // [B, D], unit norm
  torch::Tensor ItemEmbedding(const ModelInput& input) override;  // [N, D], unit norm
  double temperature() const override { return temperature_; }
  const std::vector<int>& user_features() const override { return user_tower_features_; }
  const std::vector<int>& item_features() const override { return item_tower_features_; }

  // The GRU's last hidden state of the top layer for each history: [B, hidden_size].
  torch::Tensor EncodeHistory(const ModelInput& input);

  const HistoryItemFeatures& features() const { return features_; }
  torch::nn::GRU& gru() { return gru_; }
  MLP& mlp() { return mlp_; }

 private:
  HistoryItemFeatures features_;
  FeatureGroup user_;
  std::vector<int> user_tower_features_, item_tower_features_;
  double dropout_;
  double temperature_;
  torch::nn::GRU gru_{nullptr};
  MLP mlp_{nullptr};
};

}  // namespace shardrec::models
