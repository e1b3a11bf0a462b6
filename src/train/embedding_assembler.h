#pragma once
// Turns a prepared batch into model input: the pulled rows of each table become leaf tensors
// (their gradients are what gets pushed), and each feature's embeddings are gathered or pooled
// from them. No row is copied into a table the model owns.
#include <torch/torch.h>

#include <vector>

#include "data/feature_schema.h"
#include "models/model.h"
#include "train/prepared_batch.h"

namespace shardrec::train {

struct AssembledBatch {
  models::ModelInput input;
  torch::Tensor labels;              // [B, num_labels]
  std::vector<torch::Tensor> rows;   // per table: [U + 1, D] leaf (requires_grad when training)
};

// The tensors view the prepared batch's buffers (keep `pb` alive while they are in use); on a GPU
// `device` they are copies there, the pulled rows leaf tensors on the device.
AssembledBatch Assemble(const data::FeatureSchema& schema, PreparedBatch& pb, bool requires_grad,
                        torch::Device device = torch::kCPU);

}  // namespace shardrec::train
