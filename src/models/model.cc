#include "models/model.h"

namespace shardrec::models {

torch::Tensor Model::Loss(const torch::Tensor& outputs, const torch::Tensor& labels) {
  const int64_t tasks = num_tasks();
  torch::Tensor out = outputs.reshape({labels.size(0), tasks});
  torch::Tensor y = labels.narrow(1, 0, tasks);
  // Mean over rows per task, summed over tasks (one task: the plain mean BCE).
  return torch::binary_cross_entropy_with_logits(out, y) * static_cast<double>(tasks);
}

torch::Tensor Model::Predict(const torch::Tensor& outputs) {
  return torch::sigmoid(outputs).reshape({outputs.size(0), num_tasks()});
}

}  // namespace shardrec::models
