#include "models/two_tower.h"

#include <torch/torch.h>

#include "common/error.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

namespace {

std::string ListField(const std::string& field, const char* name) { return field + "." + name; }

// Dssm and FacebookDssm carry the same tower fields under the same names.
template <typename Config>
TwoTowerModel::Spec SpecOf(const Config& c, const std::string& field) {
  TwoTowerModel::Spec spec;
  spec.field = field;
  spec.user_features.assign(c.user_features().begin(), c.user_features().end());
  spec.item_features.assign(c.item_features().begin(), c.item_features().end());
  TowerParams shared;
  shared.hidden_units.assign(c.hidden_units().begin(), c.hidden_units().end());
  if (shared.hidden_units.empty()) shared.hidden_units = {256, 128};  // the reference examples' towers
  shared.embedding_dim = c.embedding_dim();
  shared.dropout_rates.assign(c.dropout_rates().begin(), c.dropout_rates().end());
  shared.activation = ActivationOf(c.activation());
  spec.user_mlp = TowerOptions(shared, c.has_user_tower() ? &c.user_tower() : nullptr, field + ".user_tower");
  spec.item_mlp = TowerOptions(shared, c.has_item_tower() ? &c.item_tower() : nullptr, field + ".item_tower");
  spec.temperature = c.temperature();
  return spec;
}

}  // namespace

ActivationKind ActivationOf(config::Activation activation) {
  config::Mlp probe;  // layers.h maps the config enum only through MlpOptionsFromConfig
  probe.set_activation(activation);
  return MlpOptionsFromConfig(probe, {1}, false).activation;
}

MlpOptions TowerOptions(const TowerParams& shared, const config::Mlp* own, const std::string& field) {
  MlpOptions o;
  if (own != nullptr && own->dims_size() > 0) {
    o = MlpOptionsFromConfig(*own, {}, /*output_layer=*/false);
    if (!own->has_activation()) o.activation = shared.activation;
    if (!o.dropout_rates.empty() && o.dropout_rates.size() != o.dims.size())
      throw ConfigError("field " + field + ".dropout_rates: " + std::to_string(o.dropout_rates.size()) +
                        " rates for " + std::to_string(o.dims.size()) + " layers");
    return o;
  }
  o.dims = shared.hidden_units;
  o.dims.push_back(shared.embedding_dim);
  o.activation = shared.activation;
  o.output_layer = false;
  o.dropout_rates = shared.dropout_rates;
  if (!o.dropout_rates.empty() && o.dropout_rates.size() != o.dims.size()) {
    throw ConfigError("field " + field.substr(0, field.rfind('.')) + ".dropout_rates: " +
                      std::to_string(o.dropout_rates.size()) + " rates for " + std::to_string(o.dims.size()) +
                      " layers (hidden_units, then the embedding layer)");
  }
  for (int64_t d : o.dims)
    if (d <= 0) throw ConfigError("field " + field.substr(0, field.rfind('.')) + ": tower widths must be > 0");
  return o;
}

torch::Tensor L2Normalize(const torch::Tensor& x) {
  return x / x.norm(2, -1, /*keepdim=*/true).clamp_min(1e-12);
}

torch::Tensor MeanOfRecent(const FeatureInput& sequence, int64_t max_len) {
  const torch::Tensor& emb = sequence.emb;  // [B, L, D], right-aligned
  const int64_t L = emb.size(1);
  torch::Tensor n = sequence.lengths.clamp_max(max_len);  // items averaged per row
  // Position j is averaged when j >= L - n (the last n columns); padding is zero anyway.
  torch::Tensor keep = torch::arange(L, sequence.lengths.options()).unsqueeze(0) >= (L - n).unsqueeze(1);
  torch::Tensor sum = (emb * keep.unsqueeze(2).to(emb.dtype())).sum(1);
  return sum / n.clamp_min(1).unsqueeze(1).to(emb.dtype());
}

int FeatureIndex(const data::FeatureSchema& schema, const std::string& name) {
  for (size_t i = 0; i < schema.features.size(); ++i)
    if (schema.features[i].name == name) return static_cast<int>(i);
  return -1;
}

std::vector<int> FeatureIndices(const data::FeatureSchema& schema, const std::vector<std::string>& names) {
  std::vector<int> out;
  for (const std::string& n : names) out.push_back(FeatureIndex(schema, n));
  return out;
}

TwoTowerModel::TwoTowerModel(const Spec& spec, const data::FeatureSchema& schema) : temperature_(spec.temperature) {
  if (spec.user_features.empty())
    throw ConfigError("field " + ListField(spec.field, "user_features") + ": missing (list the user tower's features)");
  if (spec.item_features.empty())
    throw ConfigError("field " + ListField(spec.field, "item_features") + ": missing (list the item tower's features)");
  user_ = ResolveFeatures(schema, spec.user_features, FeatureUse::kFlat, ListField(spec.field, "user_features"));
  item_ = ResolveFeatures(schema, spec.item_features, FeatureUse::kFlat, ListField(spec.field, "item_features"));
  user_indices_ = FeatureIndices(schema, spec.user_features);
  item_indices_ = FeatureIndices(schema, spec.item_features);
  if (!(temperature_ > 0)) throw ConfigError("field " + spec.field + ".temperature: must be > 0");
  if (spec.user_mlp.dims.empty() || spec.item_mlp.dims.empty())
    throw ConfigError("field " + spec.field + ": a tower needs at least one layer");
  if (spec.user_mlp.dims.back() != spec.item_mlp.dims.back()) {
    throw ConfigError("field " + spec.field + ": the towers must end in one width (the embedding dim), but the user tower ends in " +
                      std::to_string(spec.user_mlp.dims.back()) + " and the item tower in " +
                      std::to_string(spec.item_mlp.dims.back()));
  }
  user_mlp_ = register_module("user_mlp", MLP(user_.flat_dim, spec.user_mlp));
  item_mlp_ = register_module("item_mlp", MLP(item_.flat_dim, spec.item_mlp));
}

torch::Tensor TwoTowerModel::UserEmbedding(const ModelInput& input) {
  return L2Normalize(user_mlp_->forward(Flatten(input, user_)));
}

torch::Tensor TwoTowerModel::ItemEmbedding(const ModelInput& input) {
  return L2Normalize(item_mlp_->forward(Flatten(input, item_)));
}

TwoTowerModel::Spec TwoTowerSpec(const config::Dssm& config, const std::string& field) { return SpecOf(config, field); }
TwoTowerModel::Spec TwoTowerSpec(const config::FacebookDssm& config, const std::string& field) {
  return SpecOf(config, field);
}

}  // namespace shardrec::models
