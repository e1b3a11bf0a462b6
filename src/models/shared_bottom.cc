#include "models/shared_bottom.h"

#include "shardrec/config.pb.h"

namespace shardrec::models {

namespace {
const std::vector<int64_t> kDefaultBottomDims = {117};
const std::vector<int64_t> kDefaultTowerDims = {8};
}  // namespace

SharedBottom::SharedBottom(const config::SharedBottom& config, const data::FeatureSchema& schema)
    : MultiTaskModel(ResolveTasks(config.num_tasks(), {config.task_types().begin(), config.task_types().end()},
                                  schema.label_columns.size(), "model.shared_bottom")),
      features_(ResolveFeatures(schema, config.features(), FeatureUse::kFlat, "model.shared_bottom.features")) {
  bottom_ = register_module(
      "bottom", MLP(features_.flat_dim, MlpOptionsFromConfig(config.bottom(), kDefaultBottomDims, /*output_layer=*/false)));
  towers_ = register_module(
      "towers", TaskTowers(bottom_->output_dim(), TowerOptions({config.towers().begin(), config.towers().end()}, num_tasks(),
                                                               kDefaultTowerDims, "model.shared_bottom.towers")));
  bottom_last_weight_ = LastHiddenWeight(bottom_);  // the bottom always has a hidden layer
  InitLoss(config.loss(), "model.shared_bottom.loss");
}

torch::Tensor SharedBottom::forward(const ModelInput& input) {
  return towers_->forward(bottom_->forward(Flatten(input, features_)));
}

std::vector<torch::Tensor> SharedBottom::SharedLayerWeights() { return {bottom_last_weight_}; }

}  // namespace shardrec::models
