#include "models/wide_deep.h"

#include "shardrec/config.pb.h"

namespace shardrec::models {

// Default hidden layers when the config lists no mlp dims (the reference examples' [256, 128]).
// Dropout and activation follow the config (proto defaults: 0, relu); the reference examples use
// dropout 0.2 with relu.
static const std::vector<int64_t> kDefaultMlpDims = {256, 128};

WideDeep::WideDeep(const config::WideDeep& config, const data::FeatureSchema& schema)
    : wide_(ResolveFeatures(schema, config.wide_features(), FeatureUse::kFlat, "model.wide_deep.wide_features")),
      deep_(ResolveFeatures(schema, config.deep_features(), FeatureUse::kFlat, "model.wide_deep.deep_features")) {
  linear_ = register_module("linear", LR(wide_.flat_dim));
  mlp_ = register_module(
      "mlp", MLP(deep_.flat_dim, MlpOptionsFromConfig(config.mlp(), kDefaultMlpDims, /*output_layer=*/true)));
}

torch::Tensor WideDeep::forward(const ModelInput& input) {
  torch::Tensor y = linear_->forward(Flatten(input, wide_)) + mlp_->forward(Flatten(input, deep_));
  return y.squeeze(1);
}

}  // namespace shardrec::models
