#pragma once
// NARM (Li et al., CIKM 2017), as Torch-RecHub's models/matching/narm.py:
//   e = Dropout(history embeddings)                        (embedding_dropout_rate)
//   h_1..h_T = GRU(e) over the real items only, h_T = the last state    (hidden_size H, with bias)
//   c_g = h_T                                              (global encoder)
//   q_i = v^T sigmoid(A1 h_T + A2 h_i);  alpha = exp(q) over the real positions, normalised
//   c_l = sum_i alpha_i h_i                                (local encoder)
//   c = Dropout([c_g; c_l])                                (dropout_rate)
//   user = c B^T  [B, D] (B: [D, 2H]);  item = raw item embedding;  score = <user, item> / T.
// The reference scores c B^T E^T against the whole catalogue in training (full softmax). Here
// training scores the candidates the matching trainer draws (the row's item, sampled or in-batch
// negatives); retrieval evaluation still scores every item of the catalogue.
// A1, A2 are [attention_size, H] and v [attention_size] (the reference: attention_size = H).
// Histories arrive right-aligned; they are left-aligned so that the GRU (which has a bias and
// would move its state on padding) starts on the first real item and h_T is read at each row's
// length: the states of the reference's pack_padded_sequence.
#include "models/match_model.h"
#include "models/sequence_recall_layers.h"

#include <torch/nn/modules/rnn.h>

namespace shardrec::config {
class Narm;
}

namespace shardrec::models {

class Narm : public MatchModel {
 public:
  Narm(const config::Narm& config, const data::FeatureSchema& schema);

  torch::Tensor UserEmbedding(const ModelInput& input) override;  // c B^T: [B, D]
  torch::Tensor ItemEmbedding(const ModelInput& input) override;  // raw embeddings [N, D]
  double temperature() const override { return temperature_; }
  const std::vector<int>& user_features() const override { return user_tower_features_; }
  const std::vector<int>& item_features() const override { return item_tower_features_; }

  // Attention weights alpha [B, T] over the left-aligned history (0 beyond each row's length) and
  // the session representation c = [c_g; c_l] [B, 2H] before its dropout.
  struct Session {
    torch::Tensor alpha, c;
  };
  Session Encode(const ModelInput& input);

  const HistoryItemFeatures& features() const { return features_; }
  torch::nn::GRU& gru() { return gru_; }
  torch::Tensor a1, a2, v, b;  // [A, H], [A, H], [A], [D, 2H]

 private:
  HistoryItemFeatures features_;
  std::vector<int> user_tower_features_, item_tower_features_;
  double embedding_dropout_, dropout_, temperature_;
  torch::nn::GRU gru_{nullptr};
};

}  // namespace shardrec::models
