#include "models/youtube_dnn.h"

#include <torch/torch.h>

#include "common/error.h"
#include "models/two_tower.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

namespace {
const char kField[] = "model.youtube_dnn";
}

YoutubeDnn::YoutubeDnn(const config::YoutubeDnn& config, const data::FeatureSchema& schema)
    : max_seq_len_(config.max_seq_len()), temperature_(config.temperature()) {
  const std::string field = kField;
  if (config.user_features().empty()) throw ConfigError("field " + field + ".user_features: missing (list the user tower's features)");
  if (config.item_features_size() != 1)
    throw ConfigError("field " + field + ".item_features: must name exactly one sparse feature (the item id), got " +
                      std::to_string(config.item_features_size()));
  if (max_seq_len_ < 1) throw ConfigError("field " + field + ".max_seq_len: must be >= 1");
  if (!(temperature_ > 0)) throw ConfigError("field " + field + ".temperature: must be > 0");

  const int item = FeatureIndex(schema, config.item_features(0));
  if (item < 0) throw ConfigError("field " + field + ".item_features[0]: unknown feature \"" + config.item_features(0) + "\"");
  if (schema.features[item].kind != data::FeatureKind::kSparse)
    throw ConfigError("field " + field + ".item_features[0]: \"" + config.item_features(0) + "\" must be a sparse feature (the item id)");
  item_indices_ = {item};
  const int64_t item_dim = schema.features[item].dim;

  std::vector<std::string> flat_names;
  for (int k = 0; k < config.user_features_size(); ++k) {
    const std::string& name = config.user_features(k);
    const int f = FeatureIndex(schema, name);
    const std::string at = field + ".user_features[" + std::to_string(k) + "]";
    if (f < 0) throw ConfigError("field " + at + ": unknown feature \"" + name + "\"");
    const data::FeatureSpec& spec = schema.features[f];
    user_indices_.push_back(f);
    if (spec.kind == data::FeatureKind::kSequence && spec.pooling == data::Pooling::kConcat) {
      histories_.push_back(f);
      continue;
    }
    if (spec.kind == data::FeatureKind::kSequence && spec.max_len > max_seq_len_) {
      throw ConfigError("field " + at + ": the history \"" + name + "\" is pooled over max_len " + std::to_string(spec.max_len) +
                        " items, more than max_seq_len " + std::to_string(max_seq_len_) +
                        " (lower the feature's max_len, or pool it CONCAT so that the model averages its last max_seq_len)");
    }
    flat_names.push_back(name);
  }
  int64_t input_dim = 0;
  if (!flat_names.empty()) {
    flat_ = ResolveFeatures(schema, flat_names, FeatureUse::kFlat, field + ".user_features");
    input_dim += flat_.flat_dim;
  }
  for (int h : histories_) input_dim += schema.features[h].dim;

  TowerParams params;
  params.hidden_units.assign(config.hidden_units().begin(), config.hidden_units().end());
  if (params.hidden_units.empty()) params.hidden_units = {128, 64};
  params.embedding_dim = config.has_embedding_dim() ? config.embedding_dim() : item_dim;
  if (params.embedding_dim != item_dim) {
    throw ConfigError("field " + field + ".embedding_dim: the user vector meets the raw item embedding, so it must be the item table's dim " +
                      std::to_string(item_dim) + ", got " + std::to_string(params.embedding_dim));
  }
  params.dropout_rates.assign(config.dropout_rates().begin(), config.dropout_rates().end());
  params.activation = ActivationOf(config.activation());
  mlp_ = register_module("user_mlp", MLP(input_dim, TowerOptions(params, nullptr, field + ".user_tower")));
}

torch::Tensor YoutubeDnn::UserEmbedding(const ModelInput& input) {
  std::vector<torch::Tensor> parts;
  if (!flat_.embedded.empty() || !flat_.dense_columns.empty()) parts.push_back(Flatten(input, flat_));
  for (int h : histories_) parts.push_back(MeanOfRecent(input.features[h], max_seq_len_));
  torch::Tensor x = parts.size() == 1 ? parts[0] : torch::cat(parts, 1);
  return L2Normalize(mlp_->forward(x));
}

torch::Tensor YoutubeDnn::ItemEmbedding(const ModelInput& input) {
  const torch::Tensor& emb = input.features[item_indices_[0]].emb;
  TORCH_CHECK(emb.defined() && emb.dim() == 2, "YouTube DNN: model input has no item embedding [N, D]");
  return L2Normalize(emb);
}

}  // namespace shardrec::models
