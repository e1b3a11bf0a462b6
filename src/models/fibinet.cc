#include "models/fibinet.h"

#include <algorithm>

#include "common/error.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {
namespace {

// Default hidden layers when the config lists no mlp dims (the reference example's [256, 128];
// it also uses dropout 0.2 with relu).
const std::vector<int64_t> kDefaultMlpDims = {256, 128};
const char* const kFeaturesField = "model.fibinet.features";

// The fields that interact: the embedded features of the resolved list, one dimension.
FeatureGroup InteractingFields(const data::FeatureSchema& schema, const FeatureGroup& all) {
  if (all.num_fields() < 2) {
    throw ConfigError(std::string("field ") + kFeaturesField +
                      ": FiBiNET needs at least two sparse or pooled sequence features to interact, got " +
                      std::to_string(all.num_fields()));
  }
  return ResolveFeatures(schema, all.names, FeatureUse::kStacked, kFeaturesField);
}

// The dense features of the list (every dense feature of the schema when the list is empty).
std::vector<std::string> DenseNames(const data::FeatureSchema& schema, const config::FiBiNet& config) {
  std::vector<std::string> names;
  for (const data::FeatureSpec& f : schema.features) {
    if (f.kind != data::FeatureKind::kDense) continue;
    const bool listed = config.features().empty() ||
                        std::find(config.features().begin(), config.features().end(), f.name) != config.features().end();
    if (listed) names.push_back(f.name);
  }
  return names;
}

int64_t ReductionRatio(const config::FiBiNet& config) {
  if (config.reduction_ratio() < 1) {
    throw ConfigError("field model.fibinet.reduction_ratio: must be >= 1, got " + std::to_string(config.reduction_ratio()));
  }
  return config.reduction_ratio();
}

}  // namespace

FiBiNet::FiBiNet(const config::FiBiNet& config, const data::FeatureSchema& schema)
    : fields_(InteractingFields(schema, ResolveFeatures(schema, config.features(), FeatureUse::kFlat, kFeaturesField))) {
  const std::vector<std::string> dense_names = DenseNames(schema, config);
  has_dense_ = !dense_names.empty();
  if (has_dense_) dense_ = ResolveFeatures(schema, dense_names, FeatureUse::kFlat, kFeaturesField);
  const BilinearType type = ParseBilinearType(config.bilinear_type(), "model.fibinet.bilinear_type");
  const int64_t num_fields = fields_.num_fields();
  senet_ = register_module("senet", Senet(num_fields, ReductionRatio(config)));
  bilinear_ = register_module("bilinear", BilinearInteraction(num_fields, fields_.embed_dim, type));
  const int64_t num_pairs = num_fields * (num_fields - 1) / 2;
  const int64_t mlp_input = 2 * num_pairs * fields_.embed_dim + (has_dense_ ? dense_.flat_dim : 0);
  mlp_ = register_module("mlp", MLP(mlp_input, MlpOptionsFromConfig(config.mlp(), kDefaultMlpDims, /*output_layer=*/true)));
}

torch::Tensor FiBiNet::forward(const ModelInput& input) {
  torch::Tensor v = Stack(input, fields_);  // [B, F, D]
  const int64_t batch = v.size(0);
  // Both bilinear outputs are contiguous [B, P, D]: flattening them is a view, and one cat
  // builds the MLP input.
  std::vector<torch::Tensor> parts = {bilinear_->forward(v).view({batch, -1}),
                                      bilinear_->forward(senet_->forward(v)).view({batch, -1})};
  if (has_dense_) parts.push_back(Flatten(input, dense_));
  return mlp_->forward(torch::cat(parts, 1)).squeeze(1);
}

}  // namespace shardrec::models
