#include "models/esmm.h"

#include <torch/torch.h>

#include "common/error.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

namespace {
const std::vector<int64_t> kDefaultTowerDims = {16, 8};  // the reference examples' cvr/ctr_params

std::vector<TaskKind> EsmmTasks(const data::FeatureSchema& schema) {
  const size_t labels = schema.label_columns.size();
  if (labels != 0 && labels != 2)
    throw ConfigError("field data.label_columns: ESMM needs two label columns (click, purchase), got " + std::to_string(labels));
  return {TaskKind::kClassification, TaskKind::kClassification};
}
}  // namespace

Esmm::Esmm(const config::Esmm& config, const data::FeatureSchema& schema)
    : MultiTaskModel(EsmmTasks(schema)),
      features_(ResolveFeatures(schema, config.features(), FeatureUse::kFlat, "model.esmm.features")) {
  int64_t tower_input = features_.flat_dim;
  if (config.bottom().dims_size() > 0) {
    bottom_ = register_module("bottom", MLP(features_.flat_dim, MlpOptionsFromConfig(config.bottom(), {}, /*output_layer=*/false)));
    tower_input = bottom_->output_dim();
    bottom_last_weight_ = LastHiddenWeight(bottom_);
  }
  towers_ = register_module("towers", TaskTowers(tower_input, TowerOptions({config.towers().begin(), config.towers().end()}, 2,
                                                                           kDefaultTowerDims, "model.esmm.towers")));
  InitLoss(config.loss(), "model.esmm.loss");
}

torch::Tensor Esmm::forward(const ModelInput& input) {
  torch::Tensor x = Flatten(input, features_);
  if (!bottom_.is_empty()) x = bottom_->forward(x);
  return towers_->forward(x);
}

torch::Tensor Esmm::Predict(const torch::Tensor& outputs) {
  const torch::Tensor p_ctr = torch::sigmoid(outputs.select(1, 0));
  return torch::stack({p_ctr, p_ctr * torch::sigmoid(outputs.select(1, 1))}, 1);
}

torch::Tensor Esmm::TaskLosses(const torch::Tensor& outputs, const torch::Tensor& labels) {
  TORCH_CHECK(outputs.dim() == 2 && outputs.size(1) == 2, "ESMM outputs must be [B, 2], got ", outputs.sizes());
  TORCH_CHECK(labels.dim() == 2 && labels.size(1) >= 2, "ESMM needs the labels click and purchase, got ", labels.sizes());
  const torch::Tensor a = outputs.select(1, 0), b = outputs.select(1, 1);
  const torch::Tensor click = labels.select(1, 0);
  const torch::Tensor ctcvr = click * labels.select(1, 1);
  const torch::Tensor ctr_loss = torch::binary_cross_entropy_with_logits(a, click);
  // BCE(p, y) with p = sigmoid(a) sigmoid(b): -log p - (1 - y) log((1 - p) / p).
  const torch::Tensor neg_log_p = torch::softplus(-a) + torch::softplus(-b);
  const torch::Tensor log_odds_against = torch::logsumexp(torch::stack({-a, -b, -a - b}, 1), 1);  // log((1 - p) / p)
  const torch::Tensor ctcvr_loss = (neg_log_p - (1 - ctcvr) * log_odds_against).mean();
  return torch::stack({ctr_loss, ctcvr_loss});
}

std::vector<torch::Tensor> Esmm::SharedLayerWeights() {
  if (!bottom_last_weight_.defined()) return {};
  return {bottom_last_weight_};
}

}  // namespace shardrec::models
