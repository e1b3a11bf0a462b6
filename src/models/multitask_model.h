#pragma once
// What the multi-task models (SharedBottom, ESMM, MMoE, PLE) share: one task per label column,
// each a classification task (the head gives a logit: Predict applies the sigmoid, the loss is
// BCE) or a regression task (the head gives the value: Predict is the identity, the loss is MSE),
// as the reference's PredictionLayer and MTLTrainer do per task_type. forward() returns the raw
// head outputs [B, T]; Loss() computes each task's mean loss and combines them with the model's
// MultiTaskLoss (weighted sum, UWL or GradNorm), so the trainer trains any of these models like a
// single-task one.
#include <string>
#include <vector>

#include "models/model.h"
#include "models/multitask_loss.h"

namespace shardrec::models {

// The task kinds of a multi-task model. T is num_tasks when > 0, else the number of task_types
// when any, else num_labels. Throws ConfigError (fields below `field`, e.g. "model.mmoe") when T
// differs from num_labels (when num_labels > 0), when task_types has neither 0 nor T entries, or
// for a type other than "classification" / "regression".
std::vector<TaskKind> ResolveTasks(int num_tasks, const std::vector<std::string>& task_types, size_t num_labels,
                                   const std::string& field);

class MultiTaskModel : public Model {
 public:
  int num_tasks() const override { return static_cast<int>(tasks_.size()); }
  TaskKind task_kind(int task) const override { return tasks_.at(static_cast<size_t>(task)); }

  // The MultiTaskLoss of TaskLosses(outputs, labels).
  torch::Tensor Loss(const torch::Tensor& outputs, const torch::Tensor& labels) override;
  // [B, T]: sigmoid(outputs) in classification columns, outputs in regression columns.
  torch::Tensor Predict(const torch::Tensor& outputs) override;

  // Each task's mean loss over the batch, [T]: BCE with logits for classification tasks, squared
  // error for regression tasks, against labels[:, t].
  virtual torch::Tensor TaskLosses(const torch::Tensor& outputs, const torch::Tensor& labels);

  // GradNorm's W: the weights of the last layer that every task's loss flows through. Empty when
  // the model has no shared dense layer (GradNorm is then refused at construction).
  virtual std::vector<torch::Tensor> SharedLayerWeights() = 0;

  MultiTaskLoss& multi_task_loss() { return loss_; }

 protected:
  explicit MultiTaskModel(std::vector<TaskKind> tasks);
  // Builds the loss (submodule "mtl_loss"); call at the end of the derived constructor, once
  // SharedLayerWeights() can answer. Throws ConfigError (naming `field`) for GradNorm without a
  // shared layer, and for bad weights.
  void InitLoss(const config::MultiTaskLoss& config, const std::string& field);

 private:
  std::vector<TaskKind> tasks_;
  bool all_classification_ = true, all_regression_ = true;
  torch::Tensor classification_columns_;  // [T] bool
  MultiTaskLoss loss_{nullptr};
};

}  // namespace shardrec::models
