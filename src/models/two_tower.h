#pragma once
// What the two-tower recall models (DSSM, Facebook DSSM, YouTube DNN) share: tower MLP options
// built from the seed's parameters, L2 normalisation, the mean of a right-aligned history, and
// the DSSM-style model itself.
//
// TwoTowerModel, as Torch-RecHub's models/matching/dssm.py and dssm_facebook.py:
//   u = L2norm(user MLP(Flatten(user features)))    [B, D]
//   i = L2norm(item MLP(Flatten(item features)))    [N, D]
//   score(u, i) = <u, i> / temperature
// Each tower MLP is the reference MLP without output layer: per layer Linear -> BatchNorm1d ->
// activation -> Dropout, the last layer's width being the embedding dimension D.
// Deliberate difference: the reference computes sigmoid(<u, i>) and never divides by its
// `temperature`; here the temperature is honoured (models.md).
#include <cstdint>
#include <string>
#include <vector>

#include "models/feature_inputs.h"
#include "models/layers.h"
#include "models/match_model.h"

namespace shardrec::config {
class Mlp;
class Dssm;
class FacebookDssm;
enum Activation : int;
}

namespace shardrec::models {

// The seed's tower parameters: hidden_units, then one layer of embedding_dim.
struct TowerParams {
  std::vector<int64_t> hidden_units;
  int64_t embedding_dim = 0;
  std::vector<double> dropout_rates;  // empty, or one per layer (hidden_units + 1)
  ActivationKind activation = ActivationKind::kPrelu;
};

// The MLP options of one tower: `own`'s (a user_tower / item_tower message) when it lists dims,
// with its activation defaulting to `shared.activation` when unset; else hidden_units +
// [embedding_dim] with the shared dropout_rates and activation. Never an output layer. Throws
// ConfigError naming `field` (e.g. "model.dssm.user_tower") for a dropout list of the wrong
// length or an empty tower.
MlpOptions TowerOptions(const TowerParams& shared, const config::Mlp* own, const std::string& field);

// The layers' activation for a config enum value.
ActivationKind ActivationOf(config::Activation activation);

// x / max(|x|_2, 1e-12) along the last dimension (torch's F.normalize).
torch::Tensor L2Normalize(const torch::Tensor& x);

// The mean of the last `max_len` real items of a right-aligned concat sequence (emb [B, L, D]
// zero at padding, lengths [B]): [B, D]; zeros for an empty history.
torch::Tensor MeanOfRecent(const FeatureInput& sequence, int64_t max_len);

// Schema index of the feature called `name` (-1 when none), and of each name of a list.
// (FeatureSchema::Find lives in the data library, which the models do not link.)
int FeatureIndex(const data::FeatureSchema& schema, const std::string& name);
std::vector<int> FeatureIndices(const data::FeatureSchema& schema, const std::vector<std::string>& names);

class TwoTowerModel : public MatchModel {
 public:
  struct Spec {
    std::string field;  // config path of the model, e.g. "model.dssm"
    std::vector<std::string> user_features, item_features;
    MlpOptions user_mlp, item_mlp;
    double temperature = 1;
  };

  // Throws ConfigError (field paths under spec.field) for empty or unusable feature lists, bad
  // towers, towers of different output widths, or a temperature <= 0.
  TwoTowerModel(const Spec& spec, const data::FeatureSchema& schema);

  torch::Tensor UserEmbedding(const ModelInput& input) override;  // [B, D], unit norm
  torch::Tensor ItemEmbedding(const ModelInput& input) override;  // [N, D], unit norm
  double temperature() const override { return temperature_; }
  const std::vector<int>& user_features() const override { return user_indices_; }
  const std::vector<int>& item_features() const override { return item_indices_; }

  int64_t embedding_dim() const { return user_mlp_->output_dim(); }
  const FeatureGroup& user_group() const { return user_; }
  const FeatureGroup& item_group() const { return item_; }
  MLP& user_mlp() { return user_mlp_; }
  MLP& item_mlp() { return item_mlp_; }

 private:
  FeatureGroup user_, item_;
  std::vector<int> user_indices_, item_indices_;
  double temperature_;
  MLP user_mlp_{nullptr}, item_mlp_{nullptr};
};

// The tower fields Dssm and FacebookDssm share (user/item features, hidden_units, embedding_dim,
// dropout_rates, activation, user_tower, item_tower, temperature), field paths under `field`.
TwoTowerModel::Spec TwoTowerSpec(const config::Dssm& config, const std::string& field);
TwoTowerModel::Spec TwoTowerSpec(const config::FacebookDssm& config, const std::string& field);

}  // namespace shardrec::models
