#include "models/dcnv2.h"

#include "common/error.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {
namespace {

// Default hidden layers when the config lists no mlp dims (the reference example's [256, 128]).
const std::vector<int64_t> kDefaultMlpDims = {256, 128};

DcnV2::Structure ToStructure(config::DcnV2::Structure s) {
  switch (s) {
    case config::DcnV2::PARALLEL:
      return DcnV2::Structure::kParallel;
    case config::DcnV2::STACKED:
      return DcnV2::Structure::kStacked;
    case config::DcnV2::CROSSNET_ONLY:
      return DcnV2::Structure::kCrossnetOnly;
  }
  throw ConfigError("field model.dcnv2.structure: unknown structure " + std::to_string(static_cast<int>(s)));
}

std::shared_ptr<CrossNet> MakeCrossNet(const config::DcnV2& config, int64_t dim) {
  switch (config.cross_parameterization()) {
    case config::DcnV2::VECTOR:
      return std::make_shared<VectorCrossNet>(dim, config.cross_num());
    case config::DcnV2::MATRIX:
      if (config.use_low_rank_mixture()) {
        return std::make_shared<LowRankMixtureCrossNet>(dim, config.cross_num(), config.low_rank(), config.num_experts());
      }
      return std::make_shared<MatrixCrossNet>(dim, config.cross_num());
  }
  throw ConfigError("field model.dcnv2.cross_parameterization: unknown value " +
                    std::to_string(static_cast<int>(config.cross_parameterization())));
}

}  // namespace

DcnV2::DcnV2(const config::DcnV2& config, const data::FeatureSchema& schema)
    : features_(ResolveFeatures(schema, config.features(), FeatureUse::kFlat, "model.dcnv2.features")),
      structure_(ToStructure(config.structure())) {
  RequireAtLeast(config.cross_num(), 1, "model.dcnv2.cross_num");
  RequireAtLeast(config.low_rank(), 1, "model.dcnv2.low_rank");
  RequireAtLeast(config.num_experts(), 1, "model.dcnv2.num_experts");
  const int64_t dim = features_.flat_dim;
  cross_ = register_module("cross", MakeCrossNet(config, dim));
  int64_t final_dim = dim;
  if (structure_ != Structure::kCrossnetOnly) {
    mlp_ = register_module("mlp", MLP(dim, MlpOptionsFromConfig(config.mlp(), kDefaultMlpDims, /*output_layer=*/false)));
    final_dim = structure_ == Structure::kParallel ? dim + mlp_->output_dim() : mlp_->output_dim();
  }
  linear_ = register_module("linear", LR(final_dim));
}

torch::Tensor DcnV2::forward(const ModelInput& input) {
  torch::Tensor x = Flatten(input, features_);
  torch::Tensor cross = cross_->forward(x);
  torch::Tensor top;
  switch (structure_) {
    case Structure::kParallel:
      top = torch::cat({cross, mlp_->forward(x)}, 1);
      break;
    case Structure::kStacked:
      top = mlp_->forward(cross);
      break;
    case Structure::kCrossnetOnly:
      top = cross;
      break;
  }
  return linear_->forward(top).squeeze(1);
}

}  // namespace shardrec::models
