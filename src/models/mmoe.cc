#include "models/mmoe.h"

#include "common/error.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

namespace {
const std::vector<int64_t> kDefaultExpertDims = {16};
const std::vector<int64_t> kDefaultTowerDims = {8};
}  // namespace

Mmoe::Mmoe(const config::Mmoe& config, const data::FeatureSchema& schema)
    : MultiTaskModel(ResolveTasks(config.num_tasks(), {config.task_types().begin(), config.task_types().end()},
                                  schema.label_columns.size(), "model.mmoe")),
      features_(ResolveFeatures(schema, config.features(), FeatureUse::kFlat, "model.mmoe.features")) {
  if (config.num_experts() < 1) throw ConfigError("field model.mmoe.num_experts: must be >= 1");
  experts_ = register_module("experts", ExpertGroup(features_.flat_dim, config.num_experts(),
                                                    MlpOptionsFromConfig(config.expert(), kDefaultExpertDims, /*output_layer=*/false),
                                                    "model.mmoe.expert"));
  gates_ = register_module("gates", Gate(features_.flat_dim, num_tasks(), config.num_experts(), GateOptionsFromConfig(config.gate())));
  towers_ = register_module(
      "towers", TaskTowers(experts_->output_dim(), TowerOptions({config.towers().begin(), config.towers().end()}, num_tasks(),
                                                                kDefaultTowerDims, "model.mmoe.towers")));
  InitLoss(config.loss(), "model.mmoe.loss");
}

torch::Tensor Mmoe::forward(const ModelInput& input) {
  const torch::Tensor x = Flatten(input, features_);
  return towers_->forward(MixExperts(gates_->forward(x), experts_->forward(x)));  // towers on [B, T, H]
}

std::vector<torch::Tensor> Mmoe::SharedLayerWeights() { return {experts_->last_weight()}; }

}  // namespace shardrec::models
