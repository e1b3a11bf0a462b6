#include "models/multitask_model.h"

#include <torch/torch.h>

#include "common/error.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

std::vector<TaskKind> ResolveTasks(int num_tasks, const std::vector<std::string>& task_types, size_t num_labels,
                                   const std::string& field) {
  const size_t t = num_tasks > 0 ? static_cast<size_t>(num_tasks) : !task_types.empty() ? task_types.size() : num_labels;
  if (t == 0) throw ConfigError("field " + field + ".num_tasks: a multi-task model needs at least one task");
  if (num_labels > 0 && t != num_labels)
    throw ConfigError("field " + field + (num_tasks > 0 ? ".num_tasks" : ".task_types") + ": " + std::to_string(t) +
                      " tasks, but data.label_columns names " + std::to_string(num_labels) + " labels (one per task)");
  if (!task_types.empty() && task_types.size() != t)
    throw ConfigError("field " + field + ".task_types: " + std::to_string(task_types.size()) + " types for " +
                      std::to_string(t) + " tasks (give one per task)");
  std::vector<TaskKind> kinds(t, TaskKind::kClassification);
  for (size_t i = 0; i < task_types.size(); ++i) {
    if (task_types[i] == "regression") {
      kinds[i] = TaskKind::kRegression;
    } else if (task_types[i] != "classification") {
      throw ConfigError("field " + field + ".task_types: task_types[" + std::to_string(i) + "] is \"" + task_types[i] +
                        "\"; use \"classification\" or \"regression\"");
    }
  }
  return kinds;
}

MultiTaskModel::MultiTaskModel(std::vector<TaskKind> tasks) : tasks_(std::move(tasks)) {
  std::vector<uint8_t> is_classification;
  for (TaskKind k : tasks_) {
    const bool c = k == TaskKind::kClassification;
    is_classification.push_back(c ? 1 : 0);
    all_classification_ = all_classification_ && c;
    all_regression_ = all_regression_ && !c;
  }
  classification_columns_ = torch::tensor(is_classification, torch::kUInt8).to(torch::kBool);
}

void MultiTaskModel::InitLoss(const config::MultiTaskLoss& config, const std::string& field) {
  if (config.kind() == config::MultiTaskLoss::GRADNORM && SharedLayerWeights().empty())
    throw ConfigError("field " + field + ".kind: GradNorm needs a dense layer that every task shares; this model has none");
  loss_ = register_module("mtl_loss", MultiTaskLoss(config, num_tasks(), field));
}

torch::Tensor MultiTaskModel::TaskLosses(const torch::Tensor& outputs, const torch::Tensor& labels) {
  const int64_t tasks = num_tasks();
  TORCH_CHECK(outputs.dim() == 2 && outputs.size(1) == tasks, "multi-task outputs must be [B, ", tasks, "], got ", outputs.sizes());
  TORCH_CHECK(labels.dim() == 2 && labels.size(1) >= tasks, "labels must be [B, >= ", tasks, "], got ", labels.sizes());
  const torch::Tensor y = labels.narrow(1, 0, tasks);
  // One op over all columns when the tasks are of one kind.
  if (all_classification_)
    return torch::binary_cross_entropy_with_logits(outputs, y, {}, {}, at::Reduction::None).mean(0);
  if (all_regression_) return (outputs - y).square().mean(0);
  std::vector<torch::Tensor> losses;
  for (int64_t t = 0; t < tasks; ++t) {
    const torch::Tensor o = outputs.select(1, t), l = y.select(1, t);
    losses.push_back(tasks_[static_cast<size_t>(t)] == TaskKind::kClassification ? torch::binary_cross_entropy_with_logits(o, l)
                                                                                 : torch::mse_loss(o, l));
  }
  return torch::stack(losses);
}

torch::Tensor MultiTaskModel::Loss(const torch::Tensor& outputs, const torch::Tensor& labels) {
  return loss_->forward(TaskLosses(outputs, labels), SharedLayerWeights());
}

torch::Tensor MultiTaskModel::Predict(const torch::Tensor& outputs) {
  if (all_classification_) return torch::sigmoid(outputs);
  if (all_regression_) return outputs;
  return torch::where(classification_columns_.to(outputs.device()), torch::sigmoid(outputs), outputs);
}

}  // namespace shardrec::models
