#pragma once
// Facebook DSSM (embedding-based retrieval, Huang et al., KDD 2020), as Torch-RecHub's
// models/matching/dssm_facebook.py: DSSM's two towers (models/two_tower.h), trained pair-wise on
// (positive item, negative item) by default (the reference's mode 1, BPR on (cos+, cos-)).
// The seed's auxiliary tasks: num_tasks - 1 extra heads on the row's own (user, item) pair,
//   out_t = w_t . (u (.) i) + b_t      (one Linear(D, num_tasks - 1) over u (.) i),
// a learned weighted dot product per task, so an auxiliary score stays a vector-search score.
// Task t trains on label column t of every row: BCE with logits ("classification") or squared
// error ("regression"), each weighted by auxiliary_weight and added to the retrieval loss.
// Deliberate differences: the reference has no auxiliary heads, returns raw cosines (its
// temperature unused) and leaves the item embedding of its "item" inference mode
// un-normalised; here scores are cos / temperature and item vectors are always unit norm.
#include <string>
#include <vector>

#include "models/two_tower.h"

namespace shardrec::config {
class FacebookDssm;
}

namespace shardrec::models {

class FacebookDssm : public TwoTowerModel {
 public:
  // Throws ConfigError with field paths under model.facebook_dssm (also for num_tasks < 1 and
  // task_types that are not "matching" then classification/regression, one per task).
  FacebookDssm(const config::FacebookDssm& config, const data::FeatureSchema& schema);

  MatchLoss default_loss() const override { return MatchLoss::kPairwise; }
  int num_tasks() const override { return 1 + num_auxiliary_; }
  TaskKind task_kind(int task) const override;

  torch::Tensor AuxiliaryOutputs(const torch::Tensor& users, const torch::Tensor& items) override;  // [B, T - 1]
  torch::Tensor AuxiliaryLoss(const torch::Tensor& outputs, const torch::Tensor& labels) override;

  // Point-wise path (train::Trainer): BCE of the retrieval score with label column 0, plus the
  // auxiliary losses; predictions: sigmoid for classification, identity for regression.
  torch::Tensor Loss(const torch::Tensor& outputs, const torch::Tensor& labels) override;
  torch::Tensor Predict(const torch::Tensor& outputs) override;

  torch::nn::Linear& auxiliary_heads() { return heads_; }  // null without auxiliary tasks

 private:
  int num_auxiliary_ = 0;
  std::vector<TaskKind> kinds_;  // of tasks 1..T-1
  double auxiliary_weight_ = 1;
  torch::nn::Linear heads_{nullptr};
};

}  // namespace shardrec::models
