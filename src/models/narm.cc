#include "models/narm.h"

#include <torch/torch.h>

#include "models/dropout.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

Narm::Narm(const config::Narm& config, const data::FeatureSchema& schema)
    : features_(ResolveHistoryItem(schema, config.history_feature(), config.item_feature(), "model.narm")),
      user_tower_features_{features_.history},
      item_tower_features_{features_.item},
      embedding_dropout_(config.embedding_dropout_rate()),
      dropout_(config.dropout_rate()),
      temperature_(config.temperature()) {
  const int64_t hidden = config.has_hidden_size() ? config.hidden_size() : features_.history_dim;
  const int64_t attention = config.has_attention_size() ? config.attention_size() : hidden;
  RequireConfig(hidden > 0, "model.narm.hidden_size", "must be > 0");
  RequireConfig(attention > 0, "model.narm.attention_size", "must be > 0");
  RequireConfig(embedding_dropout_ >= 0 && embedding_dropout_ < 1, "model.narm.embedding_dropout_rate", "must be in [0, 1)");
  RequireConfig(dropout_ >= 0 && dropout_ < 1, "model.narm.dropout_rate", "must be in [0, 1)");
  RequireConfig(temperature_ > 0, "model.narm.temperature", "must be > 0");
  gru_ = register_module("gru", torch::nn::GRU(torch::nn::GRUOptions(features_.history_dim, hidden).batch_first(true)));
  // N(0, 1) like the reference's torch.randn parameters.
  a1 = register_parameter("a1", torch::randn({attention, hidden}));
  a2 = register_parameter("a2", torch::randn({attention, hidden}));
  v = register_parameter("v", torch::randn({attention}));
  b = register_parameter("b", torch::randn({features_.item_dim, 2 * hidden}));
}

Narm::Session Narm::Encode(const ModelInput& input) {
  History h = ReadHistory(input, features_.history);
  torch::Tensor e = h.emb;
  if (is_training() && embedding_dropout_ > 0) e = Dropout(e, embedding_dropout_);
  const int64_t T = e.size(1);
  // Real items first, so that the GRU (which has a bias and would move its state on padding)
  // starts on each row's first real item; the states past a row's length are never read (their
  // attention weight is 0). One unpacked GRU pass over the batch's longest history costs less
  // than packing (sort, gather, scatter) on CPU, and gives the same states. An empty history
  // reads the state after one zero input; its attention weights are all 0.
  torch::Tensor lengths = h.lengths.clamp(0, T);
  torch::Tensor mask = LeftAlign(h.mask, lengths);
  torch::Tensor states = std::get<0>(gru_->forward(LeftAlign(e, lengths)));  // [B, T, H]
  const int64_t B = states.size(0), H = states.size(2);
  torch::Tensor last = (lengths.clamp_min(1) - 1).view({B, 1, 1}).expand({B, 1, H});
  torch::Tensor c_g = states.gather(1, last).squeeze(1);  // h_T: [B, H]
  // q_i = v^T sigmoid(A1 h_T + A2 h_i): [B, T]
  torch::Tensor q = torch::matmul(torch::sigmoid(torch::matmul(c_g, a1.t()).unsqueeze(1) + torch::matmul(states, a2.t())), v);
  torch::Tensor alpha = MaskedSoftmax(q, mask, 1);  // exp(q) * mask / sum
  torch::Tensor c_l = torch::bmm(alpha.unsqueeze(1), states).squeeze(1);
  return {alpha, torch::cat({c_g, c_l}, 1)};
}

torch::Tensor Narm::UserEmbedding(const ModelInput& input) {
  torch::Tensor c = Encode(input).c;
  if (is_training() && dropout_ > 0) c = Dropout(c, dropout_);
  return torch::matmul(c, b.t());
}

torch::Tensor Narm::ItemEmbedding(const ModelInput& input) { return ReadItems(input, features_.item); }

}  // namespace shardrec::models
