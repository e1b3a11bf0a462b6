#include "models/din.h"

#include <string>

#include "shardrec/config.pb.h"

namespace shardrec::models {

// Paper and reference: one hidden layer of 36 units in the activation unit.
static const std::vector<int64_t> kDefaultAttentionUnits = {36};
// The reference example's top MLP.
static const std::vector<int64_t> kDefaultMlpDims = {256, 128};

namespace {

bool SameMask(const torch::Tensor& a, const torch::Tensor& b) {
  if (!b.defined()) return false;
  return a.is_same(b) || (a.sizes() == b.sizes() && a.equal(b));
}

}  // namespace

Din::Din(const config::Din& config, const data::FeatureSchema& schema)
    : features_(ResolveBehaviourFeatures(schema, config.history_features(), config.target_features(), config.features(),
                                         "model.din", /*same_length=*/false)) {
  ActivationUnitOptions unit;
  unit.units.assign(config.attention_units().begin(), config.attention_units().end());
  if (unit.units.empty()) unit.units = kDefaultAttentionUnits;
  config::Mlp mlp_config = config.mlp();
  if (!mlp_config.has_activation()) mlp_config.set_activation(config.activation());
  // The one activation setting reaches both MLPs through the same translation.
  config::Mlp unit_activation;
  unit_activation.set_activation(config.activation());
  unit.activation = MlpOptionsFromConfig(unit_activation, {}, false).activation;
  unit.use_softmax = config.use_softmax();

  int64_t mlp_in = 2 * features_.target_dim() + features_.others.flat_dim;
  for (size_t i = 0; i < features_.pairs.size(); ++i) {
    attention_.push_back(
        register_module("attention" + std::to_string(i), ActivationUnit(features_.pairs[i].dim, unit)));
  }
  mlp_ = register_module("mlp", MLP(mlp_in, MlpOptionsFromConfig(mlp_config, kDefaultMlpDims, /*output_layer=*/true)));
}

torch::Tensor Din::forward(const ModelInput& input) {
  std::vector<torch::Tensor> parts;
  parts.reserve(2 * features_.pairs.size() + 1);
  // Histories of one column group (item and category ids of the same events) share their mask:
  // find their real positions once.
  RealPositions positions;
  for (size_t i = 0; i < features_.pairs.size(); ++i) {
    const BehaviourPair& p = features_.pairs[i];
    const FeatureInput& h = input.features.at(p.history);
    TORCH_CHECK(h.emb.defined() && h.emb.dim() == 3 && h.mask.defined(), "history \"", p.history_name,
                "\": expected a concat-pooled sequence [B, L, D] with a mask");
    if (!SameMask(h.mask, positions.mask)) positions = FindRealPositions(h.mask);
    parts.push_back(attention_[i]->Pool(input.features.at(p.target).emb, h.emb, positions));
  }
  parts.push_back(ConcatTargets(input, features_));
  if (features_.has_others()) parts.push_back(Flatten(input, features_.others));
  return mlp_->forward(torch::cat(parts, 1)).squeeze(1);
}

}  // namespace shardrec::models
