#include "models/gru4rec.h"

#include <torch/torch.h>

#include "models/dropout.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

Gru4Rec::Gru4Rec(const config::Gru4Rec& config, const data::FeatureSchema& schema)
    : features_(ResolveHistoryItem(schema, config.history_feature(), config.item_feature(), "model.gru4rec")),
      user_(ResolveUserFeatures(schema, {config.user_features().begin(), config.user_features().end()},
                                "model.gru4rec.user_features")),
      user_tower_features_(UserTowerFeatures(schema, user_, features_.history)),
      item_tower_features_{features_.item},
      dropout_(config.dropout_rate()),
      temperature_(config.temperature()) {
  const int64_t hidden = config.has_hidden_size() ? config.hidden_size() : features_.history_dim;
  RequireConfig(hidden > 0, "model.gru4rec.hidden_size", "must be > 0");
  RequireConfig(config.num_layers() > 0, "model.gru4rec.num_layers", "must be > 0");
  RequireConfig(dropout_ >= 0 && dropout_ < 1, "model.gru4rec.dropout_rate", "must be in [0, 1)");
  RequireConfig(temperature_ > 0, "model.gru4rec.temperature", "must be > 0");
  gru_ = register_module("gru", torch::nn::GRU(torch::nn::GRUOptions(features_.history_dim, hidden)
                                                   .num_layers(config.num_layers())
                                                   .bias(false)
                                                   .batch_first(true)
                                                   .dropout(config.num_layers() > 1 ? dropout_ : 0.0)));
  MlpOptions mlp = MlpOptionsFromConfig(config.mlp(), {features_.item_dim}, /*output_layer=*/false);
  RequireConfig(mlp.dims.back() == features_.item_dim, "model.gru4rec.mlp.dims",
                "the last width must equal the item embedding dim " + std::to_string(features_.item_dim) +
                    " (user and item vectors meet in a dot product)");
  mlp_ = register_module("mlp", MLP(user_.flat_dim + hidden, mlp));
}

torch::Tensor Gru4Rec::EncodeHistory(const ModelInput& input) {
  History h = ReadHistory(input, features_.history);
  torch::Tensor x = h.emb;
  if (is_training() && dropout_ > 0) x = Dropout(x, dropout_);  // zero stays zero at padding
  // The last column is every row's most recent item, and the state there is the final state:
  // h_n of the top layer.
  auto [outputs, h_n] = gru_->forward(x);
  return h_n[h_n.size(0) - 1];
}

torch::Tensor Gru4Rec::UserEmbedding(const ModelInput& input) {
  torch::Tensor state = EncodeHistory(input);
  torch::Tensor x = user_.flat_dim > 0 ? torch::cat({Flatten(input, user_), state}, 1) : state;
  return torch::nn::functional::normalize(mlp_->forward(x), torch::nn::functional::NormalizeFuncOptions().dim(1));
}

torch::Tensor Gru4Rec::ItemEmbedding(const ModelInput& input) {
  return torch::nn::functional::normalize(ReadItems(input, features_.item),
                                          torch::nn::functional::NormalizeFuncOptions().dim(1));
}

}  // namespace shardrec::models
