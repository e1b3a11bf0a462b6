#include "models/deepfm.h"

#include "shardrec/config.pb.h"

namespace shardrec::models {

// Default hidden layers when the config lists no mlp dims (the reference examples' [256, 128]).
// Dropout and activation follow the config (proto defaults: 0, relu); the reference examples use
// dropout 0.2 with relu.
static const std::vector<int64_t> kDefaultMlpDims = {256, 128};

DeepFM::DeepFM(const config::DeepFM& config, const data::FeatureSchema& schema)
    : fm_features_(ResolveFeatures(schema, config.fm_features(), FeatureUse::kStacked, "model.deepfm.fm_features")),
      deep_(ResolveFeatures(schema, config.deep_features(), FeatureUse::kFlat, "model.deepfm.deep_features")) {
  linear_ = register_module("linear", LR(fm_features_.flat_dim));
  fm_ = register_module("fm", FM());
  mlp_ = register_module(
      "mlp", MLP(deep_.flat_dim, MlpOptionsFromConfig(config.mlp(), kDefaultMlpDims, /*output_layer=*/true)));
}

torch::Tensor DeepFM::forward(const ModelInput& input) {
  torch::Tensor v = Stack(input, fm_features_);  // [B, F, D], contiguous
  torch::Tensor y = linear_->forward(v.view({v.size(0), -1})) + fm_->forward(v) + mlp_->forward(Flatten(input, deep_));
  return y.squeeze(1);
}

}  // namespace shardrec::models
