#pragma once
// Recall (matching) models: a user tower and an item tower whose vectors meet in a scaled dot
// product. The matching trainer (src/train/match_*) builds the candidates of each row (the row's
// positive item plus sampled or in-batch negatives), runs both towers and applies the point-,
// pair- or list-wise loss; retrieval evaluation runs ItemEmbedding over the whole catalogue and
// UserEmbedding over the queries.
#include <vector>

#include "models/model.h"

namespace shardrec::models {

// The loss a model was designed for (matching.mode MODEL_DEFAULT picks it).
enum class MatchLoss { kPointwise, kPairwise, kListwise };

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
  // While training, the matching trainer calls Score(users, items [B, 1 + K, D]) with each row's
  // positive item in column 0 and its sampled negatives after it, and, for in-batch negatives,
  // Score(users, items [1, B, D]) where row b's positive is column b.
  virtual torch::Tensor Score(const torch::Tensor& users, const torch::Tensor& items);

  virtual double temperature() const { return 1.0; }
  virtual int num_interests() const { return 1; }
  virtual MatchLoss default_loss() const { return MatchLoss::kListwise; }

  // Auxiliary tasks (num_tasks() > 1, Facebook DSSM): outputs [B, num_tasks() - 1] of the rows'
  // own (user, item) pairs from the tower outputs users [B, D] and items [B, D], and their loss
  // against labels [B, num_labels] (task t reads column t). Undefined when there are none.
  virtual torch::Tensor AuxiliaryOutputs(const torch::Tensor& users, const torch::Tensor& items) { return {}; }
  virtual torch::Tensor AuxiliaryLoss(const torch::Tensor& outputs, const torch::Tensor& labels) { return {}; }

  // Schema indices of the features each tower reads.
  virtual const std::vector<int>& user_features() const = 0;
  virtual const std::vector<int>& item_features() const = 0;

  // Score of each row's user against the row's own item: logits [B] ([B, num_tasks()] with the
  // auxiliary outputs after it). This makes every matching model usable by the point-wise
  // (ranking-style) path and by AUC evaluation.
  torch::Tensor forward(const ModelInput& input) override;
};

}  // namespace shardrec::models
