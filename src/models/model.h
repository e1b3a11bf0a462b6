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

class Model : public torch::nn::Module {
 public:
  // Logits: [B] for one task, [B, T] for T tasks. The trainer applies sigmoid / the loss.
  virtual torch::Tensor forward(const ModelInput& input) = 0;
  virtual int num_tasks() const { return 1; }
};

// Builds the model a validated config names. Throws ConfigError when the model cannot take the
// given features (config validation reports the same problems with line numbers first).
std::shared_ptr<Model> CreateModel(const config::Model& config, const data::FeatureSchema& schema);

}  // namespace shardrec::models
