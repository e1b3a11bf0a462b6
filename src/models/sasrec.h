#pragma once
// SASRec (Kang & McAuley, ICDM 2018), as Torch-RecHub's models/matching/sasrec.py:
//   x = Dropout(E[history] * sqrt(D) + P[position]) * mask          (P learned, max_len rows)
//   num_layers blocks (SelfAttentionBlock): Q = LN(x); x = Q + MHA(Q, x, x, causal);
//                                          x = LN(x); x = x + FFN(x); x = x * mask
//   out = LN_final(x)  [B, L, D]
//   user = out at the most recent position [B, D]; item = raw item embedding; score = dot / T.
// Differences from the reference, on purpose:
//  - positions count back from the most recent item (P[0] is the newest), so a history gets the
//    same positions whatever padding precedes it; the reference numbers the columns of its
//    pre-padded sequence, which is the same up to a relabelling of P for one fixed length;
//  - attention also masks padded keys (the reference's queries see the padding's bias terms);
//  - the user vector comes from the last block evaluated at the most recent position only (the
//    other positions' outputs of the last block are not needed for it); SequenceOutput gives every
//    position for per-position (the reference's BPR) training;
//  - hidden_size sets the feed-forward inner width (the reference: D), and the reference's
//    broken in-batch mode and CPU-built positions are not reproduced.
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/container/modulelist.h>

#include "models/match_model.h"
#include "models/sequence_recall_layers.h"

namespace shardrec::config {
class SasRec;
}

namespace shardrec::models {

class SasRec : public MatchModel {
 public:
  SasRec(const config::SasRec& config, const data::FeatureSchema& schema);

  torch::Tensor UserEmbedding(const ModelInput& input) override;  // [B, D]
  torch::Tensor ItemEmbedding(const ModelInput& input) override;  // raw embeddings [N, D]
  double temperature() const override { return temperature_; }
  const std::vector<int>& user_features() const override { return user_tower_features_; }
  const std::vector<int>& item_features() const override { return item_tower_features_; }

  // The final outputs at every position, [B, L, D] (zero-masked blocks, final LayerNorm), with
  // the history's mask [B, L] (L: the batch's longest history). Position t's output depends on
  // positions <= t only: it is the user vector for predicting the item after position t.
  struct Sequence {
    torch::Tensor outputs, mask;
  };
  Sequence SequenceOutput(const ModelInput& input);

  const HistoryItemFeatures& features() const { return features_; }
  int64_t max_len() const { return max_len_; }
  torch::nn::Embedding& positions() { return positions_; }
  std::vector<SelfAttentionBlock>& blocks() { return blocks_; }
  torch::nn::LayerNorm& final_norm() { return final_norm_; }

 private:
  // Dropout(E * sqrt(D) + P) * mask, [B, L, D].
  torch::Tensor Embed(const History& h);

  HistoryItemFeatures features_;
  std::vector<int> user_tower_features_, item_tower_features_;
  int64_t max_len_, num_heads_;
  double dropout_, temperature_;
  torch::nn::Embedding positions_{nullptr};
  std::vector<SelfAttentionBlock> blocks_;
  torch::nn::LayerNorm final_norm_{nullptr};
};

}  // namespace shardrec::models
