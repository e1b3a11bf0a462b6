#pragma once
// What a model sees: embeddings already looked up from pulled PS rows, and dense values. A model
// never owns a sparse table and never talks to the PS.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "data/feature_schema.h"

namespace shardrec::config {
class Model;
}

namespace shardrec::models {

struct FeatureInput {
  // Sparse: [B, D]. Sequence with mean/sum pooling: [B, D]. Sequence with concat: [B, L, D],
  // zero at padded positions. Undefined for dense features.
  torch::Tensor emb;
  torch::Tensor mask;     // concat sequences: [B, L] bool, true at real positions
  torch::Tensor lengths;  // sequences: [B] int64, number of real positions
};

struct ModelInput {
  const data::FeatureSchema* schema = nullptr;
  torch::Tensor dense;                 // [B, schema->num_dense] float
  std::vector<FeatureInput> features;  // indexed like schema->features
  int64_t batch_size() const { return dense.defined() ? dense.size(0) : 0; }
};

enum class TaskKind { kClassification, kRegression };

class Model : public torch::nn::Module {
 public:
  // The model's raw outputs: [B] for one task, [B, T] for T tasks (logits unless the model's
  // Predict and Loss say otherwise).
  virtual torch::Tensor forward(const ModelInput& input) = 0;
  virtual int num_tasks() const { return 1; }
  // Kind of task t: classification tasks report AUC/logloss, regression tasks MSE/MAE.
  virtual TaskKind task_kind(int /*task*/) const { return TaskKind::kClassification; }

  // The training loss of one batch: `outputs` from forward, `labels` [B, num_labels] float (the
  // first num_tasks() columns are this model's labels). Default: mean BCE with logits per task,
  // summed over tasks. Models with auxiliary losses (DIEN) or other heads override it; the
  // auxiliary terms of the last forward are added here.
  virtual torch::Tensor Loss(const torch::Tensor& outputs, const torch::Tensor& labels);

  // Per-task predictions [B, T] for metrics: probabilities for classification tasks, values for
  // regression. Default: sigmoid(outputs).
  virtual torch::Tensor Predict(const torch::Tensor& outputs);
};

// Builds the model a validated config names. Throws ConfigError when the model cannot take the
// given features (config validation reports the same problems with line numbers first).
std::shared_ptr<Model> CreateModel(const config::Model& config, const data::FeatureSchema& schema);

}  // namespace shardrec::models
