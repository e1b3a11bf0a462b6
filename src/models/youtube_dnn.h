#pragma once
// YouTube DNN (Covington et al., RecSys 2016), as Torch-RecHub's models/matching/youtube_dnn.py:
//   u = L2norm(MLP(cat(Flatten(user features), mean of each concat history)))   [B, D]
//   i = L2norm(item id embedding)                                                [N, D]
//   score = <u, i> / temperature (0.02 by default); trained list-wise against sampled negatives
//   (the reference's mode 2: softmax over [positive, negatives]).
// The user MLP has no output layer: hidden_units (default [128, 64]) then embedding_dim, which
// must be the item table's dim (the reference's user_params dims [128, 64, 16] with 16-dim items).
// The watch history is averaged over at most max_seq_len items: a MEAN-pooled history by the
// embedding layer over its Feature.max_len most recent items (max_len <= max_seq_len is
// required), a CONCAT history inside the model over its last max_seq_len real items, padding
// excluded. As in the paper and the reference, items have no tower: the item embedding table is
// the item side.
#include <vector>

#include "models/feature_inputs.h"
#include "models/layers.h"
#include "models/match_model.h"

namespace shardrec::config {
class YoutubeDnn;
}

namespace shardrec::models {

class YoutubeDnn : public MatchModel {
 public:
  // Throws ConfigError (field paths under model.youtube_dnn) for empty feature lists, an item
  // side that is not one sparse feature, an embedding_dim other than the item dim, a mean-pooled
  // history longer than max_seq_len, max_seq_len < 1 or temperature <= 0.
  YoutubeDnn(const config::YoutubeDnn& config, const data::FeatureSchema& schema);

  torch::Tensor UserEmbedding(const ModelInput& input) override;  // [B, D], unit norm
  torch::Tensor ItemEmbedding(const ModelInput& input) override;  // [N, D], unit norm
  double temperature() const override { return temperature_; }
  const std::vector<int>& user_features() const override { return user_indices_; }
  const std::vector<int>& item_features() const override { return item_indices_; }

  const FeatureGroup& flat_user_features() const { return flat_; }
  const std::vector<int>& concat_histories() const { return histories_; }
  int64_t max_seq_len() const { return max_seq_len_; }
  MLP& user_mlp() { return mlp_; }

 private:
  FeatureGroup flat_;           // sparse, dense and mean/sum-pooled user features (may be empty)
  std::vector<int> histories_;  // concat-pooled user features, averaged in the model
  std::vector<int> user_indices_, item_indices_;
  int64_t max_seq_len_;
  double temperature_;
  MLP mlp_{nullptr};
};

}  // namespace shardrec::models
