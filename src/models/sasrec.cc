#include "models/sasrec.h"

#include <torch/torch.h>

#include <cmath>

#include "models/dropout.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

SasRec::SasRec(const config::SasRec& config, const data::FeatureSchema& schema)
    : features_(ResolveHistoryItem(schema, config.history_feature(), config.item_feature(), "model.sasrec")),
      user_tower_features_{features_.history},
      item_tower_features_{features_.item},
      max_len_(config.max_len()),
      num_heads_(config.num_heads()),
      dropout_(config.dropout_rate()),
      temperature_(config.temperature()) {
  const int64_t D = features_.history_dim;
  const int64_t ffn = config.has_hidden_size() ? config.hidden_size() : D;
  RequireConfig(features_.item_dim == D, "model.sasrec.item_feature",
                "the item embedding dim " + std::to_string(features_.item_dim) + " must equal the history's " +
                    std::to_string(D) + " (the sequence output is scored against item embeddings)");
  RequireConfig(max_len_ >= features_.max_len, "model.sasrec.max_len",
                "must be >= the history's max_len " + std::to_string(features_.max_len) + " (one position row each)");
  RequireConfig(config.num_heads() > 0 && D % config.num_heads() == 0, "model.sasrec.num_heads",
                "must be > 0 and divide the embedding dim " + std::to_string(D));
  RequireConfig(config.num_layers() > 0, "model.sasrec.num_layers", "must be > 0");
  RequireConfig(ffn > 0, "model.sasrec.hidden_size", "must be > 0");
  RequireConfig(dropout_ >= 0 && dropout_ < 1, "model.sasrec.dropout_rate", "must be in [0, 1)");
  RequireConfig(temperature_ > 0, "model.sasrec.temperature", "must be > 0");
  positions_ = register_module("positions", torch::nn::Embedding(max_len_, D));
  for (int i = 0; i < config.num_layers(); ++i) {
    blocks_.push_back(register_module("block" + std::to_string(i),
                                      SelfAttentionBlock(SelfAttentionBlockOptions{D, config.num_heads(), ffn, dropout_})));
  }
  final_norm_ = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(1e-8)));
}

torch::Tensor SasRec::Embed(const History& h) {
  const int64_t L = h.emb.size(1), D = h.emb.size(2);
  TORCH_CHECK(L <= max_len_, "SASRec: history of ", L, " positions exceeds max_len ", max_len_);
  // Column j of a right-aligned history is L - 1 - j items before the newest.
  torch::Tensor back = torch::arange(L - 1, -1, -1, torch::TensorOptions(torch::kLong).device(h.emb.device()));
  torch::Tensor x = h.emb * std::sqrt(static_cast<double>(D)) + positions_->forward(back).unsqueeze(0);
  if (is_training() && dropout_ > 0) x = Dropout(x, dropout_);
  return x * h.mask.unsqueeze(2).to(x.dtype());
}

SasRec::Sequence SasRec::SequenceOutput(const ModelInput& input) {
  History h = ReadHistory(input, features_.history);
  torch::Tensor x = Embed(h);
  torch::Tensor bias = CausalAttentionBias(h.mask, x.size(1), num_heads_);
  for (SelfAttentionBlock& block : blocks_) x = block->forward(x, h.mask, bias);
  return {final_norm_->forward(x), h.mask};
}

torch::Tensor SasRec::UserEmbedding(const ModelInput& input) {
  History h = ReadHistory(input, features_.history);
  torch::Tensor x = Embed(h);
  if (blocks_.size() > 1) {
    torch::Tensor bias = CausalAttentionBias(h.mask, x.size(1), num_heads_);
    for (size_t i = 0; i + 1 < blocks_.size(); ++i) x = blocks_[i]->forward(x, h.mask, bias);
  }
  torch::Tensor last = blocks_.back()->ForwardLast(x, h.mask, CausalAttentionBias(h.mask, 1, num_heads_));
  return final_norm_->forward(last).squeeze(1);
}

torch::Tensor SasRec::ItemEmbedding(const ModelInput& input) { return ReadItems(input, features_.item); }

}  // namespace shardrec::models
