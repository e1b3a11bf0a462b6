#pragma once
// The dense side of every trainer: the optimizer a config names, its learning-rate schedule, and
// snapshots of the dense weights for early stopping.
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "shardrec/config.pb.h"

namespace shardrec::train {

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const config::DenseOptimizer& o, std::vector<torch::Tensor> params);

// Learning rate of epoch `e` (0-based) under the configured schedule.
double ScheduledLr(const config::Trainer& t, int e);

// A deep copy of every parameter and buffer, to restore the best epoch's dense weights.
std::vector<torch::Tensor> Snapshot(torch::nn::Module& m);
void Restore(torch::nn::Module& m, const std::vector<torch::Tensor>& snapshot);

}  // namespace shardrec::train
