#include "models/match_model.h"

namespace shardrec::models {

torch::Tensor MatchModel::Score(const torch::Tensor& users, const torch::Tensor& items) {
  if (users.dim() == 2) return torch::matmul(items, users.unsqueeze(2)).squeeze(2) / temperature();  // [B, C]
  // [B, I, D] x [B|1, C, D] -> [B, C, I]; a candidate's score is its best interest's.
  torch::Tensor per_interest = torch::matmul(items, users.transpose(1, 2));
  return std::get<0>(per_interest.max(2)) / temperature();
}

torch::Tensor MatchModel::forward(const ModelInput& input) {
  torch::Tensor users = UserEmbedding(input), items = ItemEmbedding(input);
  torch::Tensor score = Score(users, items.unsqueeze(1)).squeeze(1);
  if (num_tasks() == 1) return score;
  return torch::cat({score.unsqueeze(1), AuxiliaryOutputs(users, items)}, 1);
}

}  // namespace shardrec::models
