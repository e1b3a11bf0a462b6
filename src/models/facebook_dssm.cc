#include "models/facebook_dssm.h"

#include <torch/torch.h>

#include "common/error.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

FacebookDssm::FacebookDssm(const config::FacebookDssm& config, const data::FeatureSchema& schema)
    : TwoTowerModel(TwoTowerSpec(config, "model.facebook_dssm"), schema), auxiliary_weight_(config.auxiliary_weight()) {
  const std::string field = "model.facebook_dssm";
  if (config.num_tasks() < 1) throw ConfigError("field " + field + ".num_tasks: must be >= 1 (the retrieval task)");
  num_auxiliary_ = config.num_tasks() - 1;
  if (config.task_types_size() != 0 && config.task_types_size() != config.num_tasks()) {
    throw ConfigError("field " + field + ".task_types: " + std::to_string(config.task_types_size()) + " types for " +
                      std::to_string(config.num_tasks()) + " tasks (give one per task, or none)");
  }
  if (config.task_types_size() > 0 && config.task_types(0) != "matching")
    throw ConfigError("field " + field + ".task_types[0]: task 1 is the retrieval task: \"matching\", got \"" +
                      config.task_types(0) + "\"");
  for (int t = 1; t < config.num_tasks(); ++t) {
    const std::string type = config.task_types_size() ? config.task_types(t) : "classification";
    if (type == "classification") {
      kinds_.push_back(TaskKind::kClassification);
    } else if (type == "regression") {
      kinds_.push_back(TaskKind::kRegression);
    } else {
      throw ConfigError("field " + field + ".task_types[" + std::to_string(t) +
                        "]: must be \"classification\" or \"regression\", got \"" + type + "\"");
    }
  }
  if (!(auxiliary_weight_ >= 0)) throw ConfigError("field " + field + ".auxiliary_weight: must be >= 0");
  if (num_auxiliary_ > 0) heads_ = register_module("auxiliary_heads", torch::nn::Linear(embedding_dim(), num_auxiliary_));
}

TaskKind FacebookDssm::task_kind(int task) const {
  return task == 0 ? TaskKind::kClassification : kinds_.at(static_cast<size_t>(task - 1));
}

torch::Tensor FacebookDssm::AuxiliaryOutputs(const torch::Tensor& users, const torch::Tensor& items) {
  if (num_auxiliary_ == 0) return {};
  return heads_->forward(users * items);
}

torch::Tensor FacebookDssm::AuxiliaryLoss(const torch::Tensor& outputs, const torch::Tensor& labels) {
  if (num_auxiliary_ == 0) return {};
  TORCH_CHECK(labels.size(1) >= 1 + num_auxiliary_, "Facebook DSSM: ", num_auxiliary_ + 1, " tasks need as many label columns, got ",
              labels.size(1));
  torch::Tensor loss = torch::zeros({}, outputs.options());
  for (int a = 0; a < num_auxiliary_; ++a) {
    torch::Tensor out = outputs.select(1, a), y = labels.select(1, a + 1);
    loss = loss + (kinds_[a] == TaskKind::kRegression ? torch::mse_loss(out, y) : torch::binary_cross_entropy_with_logits(out, y));
  }
  return loss * auxiliary_weight_;
}

torch::Tensor FacebookDssm::Loss(const torch::Tensor& outputs, const torch::Tensor& labels) {
  if (num_auxiliary_ == 0) return Model::Loss(outputs, labels);
  torch::Tensor main = torch::binary_cross_entropy_with_logits(outputs.select(1, 0), labels.select(1, 0));
  return main + AuxiliaryLoss(outputs.narrow(1, 1, num_auxiliary_), labels);
}

torch::Tensor FacebookDssm::Predict(const torch::Tensor& outputs) {
  if (num_auxiliary_ == 0) return Model::Predict(outputs);
  std::vector<torch::Tensor> cols;
  cols.push_back(torch::sigmoid(outputs.select(1, 0)));
  for (int a = 0; a < num_auxiliary_; ++a) {
    torch::Tensor out = outputs.select(1, a + 1);
    cols.push_back(kinds_[a] == TaskKind::kRegression ? out : torch::sigmoid(out));
  }
  return torch::stack(cols, 1);
}

}  // namespace shardrec::models
