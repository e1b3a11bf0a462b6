#include "models/ple.h"

#include <torch/torch.h>

#include "common/error.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

namespace {
const std::vector<int64_t> kDefaultExpertDims = {16};
const std::vector<int64_t> kDefaultTowerDims = {8};
}  // namespace

CgcLevelImpl::CgcLevelImpl(int64_t input_dim, int num_tasks, int64_t num_specific, int64_t num_shared,
                           const MlpOptions& expert, GateOptions gate, bool last, const std::string& field) {
  for (int t = 0; t < num_tasks; ++t) {
    const std::string n = std::to_string(t);
    specific_.push_back(register_module("specific" + n, ExpertGroup(input_dim, num_specific, expert, field)));
    gates_.push_back(register_module("gate" + n, Gate(input_dim, 1, num_specific + num_shared, gate)));
  }
  if (num_shared > 0) shared_ = register_module("shared", ExpertGroup(input_dim, num_shared, expert, field));
  if (!last) shared_gate_ = register_module("shared_gate", Gate(input_dim, 1, num_tasks * num_specific + num_shared, gate));
}

std::vector<torch::Tensor> CgcLevelImpl::forward(const std::vector<torch::Tensor>& inputs) {
  const size_t tasks = specific_.size();
  TORCH_CHECK(inputs.size() == tasks + 1, "CGC level: expected ", tasks + 1, " inputs, got ", inputs.size());
  std::vector<torch::Tensor> experts;  // [B, S, H] per task, then [B, Sh, H]
  for (size_t t = 0; t < tasks; ++t) experts.push_back(specific_[t]->forward(inputs[t]));
  if (!shared_.is_empty()) experts.push_back(shared_->forward(inputs[tasks]));

  std::vector<torch::Tensor> out;
  for (size_t t = 0; t < tasks; ++t) {
    const torch::Tensor own = shared_.is_empty() ? experts[t] : torch::cat({experts[t], experts.back()}, 1);
    out.push_back(MixExperts(gates_[t]->forward(inputs[t]), own).squeeze(1));
  }
  if (!shared_gate_.is_empty())
    out.push_back(MixExperts(shared_gate_->forward(inputs[tasks]), torch::cat(experts, 1)).squeeze(1));
  return out;
}

Ple::Ple(const config::Ple& config, const data::FeatureSchema& schema)
    : MultiTaskModel(ResolveTasks(config.num_tasks(), {config.task_types().begin(), config.task_types().end()},
                                  schema.label_columns.size(), "model.ple")),
      features_(ResolveFeatures(schema, config.features(), FeatureUse::kFlat, "model.ple.features")) {
  if (config.num_layers() < 1) throw ConfigError("field model.ple.num_layers: must be >= 1");
  if (config.num_experts() < 1) throw ConfigError("field model.ple.num_experts: must be >= 1");
  if (config.num_shared_experts() < 0) throw ConfigError("field model.ple.num_shared_experts: must be >= 0");
  const MlpOptions expert = MlpOptionsFromConfig(config.expert(), kDefaultExpertDims, /*output_layer=*/false);
  const GateOptions gate = GateOptionsFromConfig(config.gate());
  int64_t input_dim = features_.flat_dim;
  for (int l = 0; l < config.num_layers(); ++l) {
    const bool last = l + 1 == config.num_layers();
    levels_.push_back(register_module("level" + std::to_string(l), CgcLevel(input_dim, num_tasks(), config.num_experts(),
                                                                             config.num_shared_experts(), expert, gate, last,
                                                                             "model.ple.expert")));
    input_dim = levels_.back()->output_dim();
  }
  towers_ = register_module("towers", TaskTowers(input_dim, TowerOptions({config.towers().begin(), config.towers().end()},
                                                                         num_tasks(), kDefaultTowerDims, "model.ple.towers")));
  InitLoss(config.loss(), "model.ple.loss");
}

torch::Tensor Ple::forward(const ModelInput& input) {
  std::vector<torch::Tensor> x(static_cast<size_t>(num_tasks()) + 1, Flatten(input, features_));
  for (CgcLevel& level : levels_) x = level->forward(x);
  return towers_->ForwardEach(x);  // the last level returns the T task outputs only
}

std::vector<torch::Tensor> Ple::SharedLayerWeights() {
  ExpertGroup& shared = levels_.back()->shared();
  if (shared.is_empty()) return {};
  return {shared->last_weight()};
}

}  // namespace shardrec::models
