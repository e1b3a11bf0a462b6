#include "models/dcn.h"

#include "shardrec/config.pb.h"

namespace shardrec::models {

// Default hidden layers when the config lists no mlp dims (the reference example's [256, 128]).
static const std::vector<int64_t> kDefaultMlpDims = {256, 128};

Dcn::Dcn(const config::Dcn& config, const data::FeatureSchema& schema)
    : features_(ResolveFeatures(schema, config.features(), FeatureUse::kFlat, "model.dcn.features")) {
  RequireAtLeast(config.cross_num(), 1, "model.dcn.cross_num");
  cross_ = register_module("cross", std::make_shared<VectorCrossNet>(features_.flat_dim, config.cross_num()));
  mlp_ = register_module(
      "mlp", MLP(features_.flat_dim, MlpOptionsFromConfig(config.mlp(), kDefaultMlpDims, /*output_layer=*/false)));
  linear_ = register_module("linear", LR(features_.flat_dim + mlp_->output_dim()));
}

torch::Tensor Dcn::forward(const ModelInput& input) {
  torch::Tensor x = Flatten(input, features_);
  torch::Tensor y = linear_->forward(torch::cat({cross_->forward(x), mlp_->forward(x)}, 1));
  return y.squeeze(1);
}

}  // namespace shardrec::models
