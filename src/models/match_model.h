#pragma once
// Recall (matching) models: a user tower and an item tower whose vectors meet in a scaled dot
// product. The matching trainer (src/train/match_*) builds the candidates of each row (the row's
// positive item plus sampled or in-batch negatives), runs both towers and applies the point-,
// pair- or list-wise loss; retrieval evaluation runs ItemEmbedding over the whole catalogue and
// UserEmbedding over the queries.
#include <vector>

#include "models/model.h"

namespace shardrec::models {

class MatchModel : public Model {
 public:
  // User representations of the rows of `input`: [B, D], or [B, I, D] for a model with I > 1
  // interests (MIND). Only the model's user features are read.
  virtual torch::Tensor UserEmbedding(const ModelInput& input) = 0;

  // Item representations of the rows of `input`: [N, D]. Only the model's item features are read,
  // so the trainer may pass a ModelInput that holds item features alone (sampled negatives, the
  // catalogue during evaluation).
  virtual torch::Tensor ItemEmbedding(const ModelInput& input) = 0;

  // Scores [B, C] of each user against its C candidates `items` [B, C, D] (or [1, C, D] shared by
  // all rows: in-batch negatives, retrieval). Default: dot product / temperature(), with the
  // best interest's score for multi-interest users; MIND overrides it with label-aware attention
  // while training.
  virtual torch::Tensor Score(const torch::Tensor& users, const torch::Tensor& items);

  virtual double temperature() const { return 1.0; }
  virtual int num_interests() const { return 1; }

  // Schema indices of the features each tower reads.
  virtual const std::vector<int>& user_features() const = 0;
  virtual const std::vector<int>& item_features() const = 0;

  // Score of each row's user against the row's own item: logits [B]. This makes every matching
  // model usable by the point-wise (ranking-style) path and by AUC evaluation.
  torch::Tensor forward(const ModelInput& input) override;
};

}  // namespace shardrec::models
