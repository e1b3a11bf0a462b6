#include "models/bst.h"

#include <cmath>
#include <limits>
#include <string>

#include "common/error.h"
#include "models/dropout.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

// The reference example's top MLP (as DIN's).
static const std::vector<int64_t> kDefaultMlpDims = {256, 128};
// torch.nn.TransformerEncoderLayer's LayerNorm epsilon and nn.LeakyReLU's default slope.
constexpr double kLayerNormEps = 1e-5;
constexpr double kLeakySlope = 0.01;

// ---------------------------------------------------------------------------------------------
// Encoder layer

TransformerEncoderLayerImpl::TransformerEncoderLayerImpl(int64_t d_model, int64_t num_heads, int64_t hidden_size,
                                                         double dropout)
    : d_(d_model), heads_(num_heads), dropout_(dropout) {
  TORCH_CHECK(d_model > 0 && num_heads > 0 && d_model % num_heads == 0, "encoder layer: d_model ", d_model,
              " must be a positive multiple of num_heads ", num_heads);
  // torch.nn.MultiheadAttention's initialisation: xavier-uniform packed projections, zero biases.
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * d_model, d_model}));
  in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * d_model}));
  out_proj = register_module("out_proj", torch::nn::Linear(d_model, d_model));
  linear1 = register_module("linear1", torch::nn::Linear(d_model, hidden_size));
  linear2 = register_module("linear2", torch::nn::Linear(hidden_size, d_model));
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model}).eps(kLayerNormEps)));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model}).eps(kLayerNormEps)));
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(in_proj_weight);
  out_proj->bias.zero_();
}

torch::Tensor TransformerEncoderLayerImpl::Dropped(const torch::Tensor& x) {
  return is_training() && dropout_ > 0 ? Dropout(x, dropout_) : x;
}

torch::Tensor TransformerEncoderLayerImpl::AfterAttention(const torch::Tensor& x, const torch::Tensor& attended) {
  torch::Tensor y = norm1(x + Dropped(attended));
  torch::Tensor ff = linear2(Dropped(torch::leaky_relu(linear1(y), kLeakySlope)));
  return norm2(y + Dropped(ff));
}

torch::Tensor TransformerEncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  const int64_t B = x.size(0), T = x.size(1), hd = d_ / heads_;
  // [B, T, 3d] -> q, k, v as [B, H, T, hd].
  torch::Tensor qkv =
      torch::linear(x, in_proj_weight, in_proj_bias).view({B, T, 3, heads_, hd}).permute({2, 0, 3, 1, 4});
  torch::Tensor q = qkv[0] * (1.0 / std::sqrt(static_cast<double>(hd)));
  torch::Tensor scores = q.matmul(qkv[1].transpose(-2, -1));  // [B, H, T(query), T(key)]
  scores = scores.masked_fill(mask.logical_not().view({B, 1, 1, T}), -std::numeric_limits<float>::infinity());
  torch::Tensor w = Dropped(torch::softmax(scores, -1));
  torch::Tensor attended = out_proj(w.matmul(qkv[2]).transpose(1, 2).reshape({B, T, d_}));

  // The rest is per token: run it at real tokens only. Padded tokens keep their input; nothing
  // reads them (they are masked keys in the next layer and never the output).
  RealPositions real = FindRealPositions(mask);
  torch::Tensor y = AfterAttention(GatherReal(x, real), GatherReal(attended, real));
  return x.reshape({B * T, d_}).index_put({real.flat}, y).view({B, T, d_});
}

torch::Tensor TransformerEncoderLayerImpl::ForLastToken(const torch::Tensor& x, const torch::Tensor& mask) {
  const int64_t B = x.size(0), T = x.size(1), hd = d_ / heads_;
  torch::Tensor last = x.select(1, T - 1);  // [B, d]
  torch::Tensor q = torch::linear(last, in_proj_weight.narrow(0, 0, d_), in_proj_bias.narrow(0, 0, d_))
                        .mul(1.0 / std::sqrt(static_cast<double>(hd)))
                        .view({B, 1, heads_, hd});
  torch::Tensor kv = torch::linear(x, in_proj_weight.narrow(0, d_, 2 * d_), in_proj_bias.narrow(0, d_, 2 * d_))
                         .view({B, T, 2, heads_, hd});
  torch::Tensor scores = (kv.select(2, 0) * q).sum(-1);  // [B, T, H]
  scores = scores.masked_fill(mask.logical_not().view({B, T, 1}), -std::numeric_limits<float>::infinity());
  torch::Tensor w = Dropped(torch::softmax(scores, 1));
  torch::Tensor context = (w.unsqueeze(-1) * kv.select(2, 1)).sum(1).reshape({B, d_});
  return AfterAttention(last, out_proj(context));
}

// ---------------------------------------------------------------------------------------------
// BST

Bst::Bst(const config::Bst& config, const data::FeatureSchema& schema)
    : features_(ResolveBehaviourFeatures(schema, config.history_features(), config.target_features(), config.features(),
                                         "model.bst", /*same_length=*/true)) {
  const int64_t d = features_.target_dim();
  const int64_t max_len = features_.pairs[0].max_len;
  if (config.num_heads() <= 0 || d % config.num_heads() != 0) {
    throw ConfigError("field model.bst.num_heads: must be a positive divisor of the item width " + std::to_string(d) +
                      " (the sum of the history dims), got " + std::to_string(config.num_heads()));
  }
  if (config.num_layers() < 1) {
    throw ConfigError("field model.bst.num_layers: must be >= 1, got " + std::to_string(config.num_layers()));
  }
  if (config.hidden_size() < 1) {
    throw ConfigError("field model.bst.hidden_size: must be >= 1, got " + std::to_string(config.hidden_size()));
  }
  if (!(config.dropout_rate() >= 0 && config.dropout_rate() < 1)) {
    throw ConfigError("field model.bst.dropout_rate: must be in [0, 1), got " + std::to_string(config.dropout_rate()));
  }
  if (config.max_seq_len() < max_len + 1) {
    throw ConfigError("field model.bst.max_seq_len: must be >= max_len + 1 = " + std::to_string(max_len + 1) +
                      " (the histories' steps and the target), got " + std::to_string(config.max_seq_len()));
  }
  positions_ = register_module("position_embedding", torch::nn::Embedding(config.max_seq_len(), d));
  for (int i = 0; i < config.num_layers(); ++i) {
    layers_.push_back(
        register_module("layer" + std::to_string(i),
                        TransformerEncoderLayer(d, config.num_heads(), config.hidden_size(), config.dropout_rate())));
  }
  mlp_ = register_module("mlp", MLP(2 * d + features_.others.flat_dim,
                                    MlpOptionsFromConfig(config.mlp(), kDefaultMlpDims, /*output_layer=*/true)));
}

torch::Tensor Bst::forward(const ModelInput& input) {
  BehaviourSequence history = ConcatHistories(input, features_);
  torch::Tensor target = ConcatTargets(input, features_);
  const int64_t B = target.size(0), L = history.steps.size(1);
  TORCH_CHECK(L + 1 <= positions_->weight.size(0), "BST: ", L, " history steps + the target exceed max_seq_len ",
              positions_->weight.size(0));
  // Position of token j (history steps 0..L-1, target L): L - j, i.e. the distance from the target.
  torch::Tensor position_ids = torch::arange(L, -1, -1, torch::kLong);
  torch::Tensor tokens =
      torch::cat({history.steps, target.unsqueeze(1)}, 1) + positions_->weight.index_select(0, position_ids);
  torch::Tensor keys = torch::cat({history.mask, torch::ones({B, 1}, history.mask.options())}, 1);
  for (size_t i = 0; i + 1 < layers_.size(); ++i) tokens = layers_[i]->forward(tokens, keys);
  torch::Tensor interest = layers_.back()->ForLastToken(tokens, keys);

  std::vector<torch::Tensor> parts = {interest, target};
  if (features_.has_others()) parts.push_back(Flatten(input, features_.others));
  return mlp_->forward(torch::cat(parts, 1)).squeeze(1);
}

}  // namespace shardrec::models
