#pragma once
// Pieces shared by the sequence recall models (GRU4Rec, NARM, SASRec, MIND): which features are
// the history, the item and the user side; reading a right-aligned history; capsule dynamic
// routing (MIND); the causal self-attention block (SASRec).
//
// Histories arrive as concat-pooled sequences [B, L, D], right-aligned: padding first, the most
// recent item in the last column, zero rows at padding (see train/prepared_batch.h). Every
// encoder here gives the same result for a history whatever padding surrounds it.
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "models/feature_inputs.h"
#include "models/model.h"

namespace shardrec::models {

// ---------------------------------------------------------------------------------------------
// Features

// The history and item features of a sequence recall model, resolved against the schema.
struct HistoryItemFeatures {
  int history = -1;         // schema index of the concat-pooled history
  int item = -1;            // schema index of the sparse item-id feature
  int64_t history_dim = 0;  // embedding dim of the history's table
  int64_t item_dim = 0;     // embedding dim of the item's table
  int64_t max_len = 0;      // the history's max_len
};

// `history_name` empty: the schema's only concat-pooled sequence. `item_name` empty: the first
// sparse feature that uses the history's table. `field` is the model's config path
// ("model.gru4rec"); messages name "<field>.history_feature" / "<field>.item_feature". Throws
// ConfigError for unknown names, features of the wrong kind, or defaults that do not resolve.
HistoryItemFeatures ResolveHistoryItem(const data::FeatureSchema& schema, const std::string& history_name,
                                       const std::string& item_name, const std::string& field);

// User-side flat features (sparse, dense, mean/sum-pooled sequences). Unlike ResolveFeatures, an
// empty list means none: with the item and its history in the same schema, "every feature" would
// put item features into the user tower. Returns an empty group (flat_dim 0) then.
FeatureGroup ResolveUserFeatures(const data::FeatureSchema& schema, const std::vector<std::string>& names,
                                 const std::string& field);

// Throws ConfigError("field <field>: <what>") unless ok: the models' own guard for config values
// (config validation reports the same with FILE:LINE first).
void RequireConfig(bool ok, const std::string& field, const std::string& what);

// Schema indices the user tower reads: the user group's features (embedded, then dense), then
// the history.
std::vector<int> UserTowerFeatures(const data::FeatureSchema& schema, const FeatureGroup& user, int history);

// ---------------------------------------------------------------------------------------------
// History input

struct History {
  torch::Tensor emb;   // [B, L, D], zero at padding; L = the longest history of the batch
  torch::Tensor mask;  // [B, L] bool, true at real items
  torch::Tensor lengths;  // [B] int64
};

// The history of `input`, with the leading columns that are padding in every row dropped (exact:
// every encoder ignores padding, and it saves their time on short batches).
History ReadHistory(const ModelInput& input, int history);

// The item-id embeddings of `input`: [N, D].
torch::Tensor ReadItems(const ModelInput& input, int item);

// Left-aligns a right-aligned [B, L, ...] tensor: row b's lengths[b] real entries move to columns
// [0, lengths[b]), its padding to the end. One gather.
torch::Tensor LeftAlign(const torch::Tensor& x, const torch::Tensor& lengths);

// Softmax of `logits` over `dim` restricted to the entries where `mask` is true; exactly 0
// elsewhere, and 0 everywhere along a slice without any true entry (no NaN for empty histories).
torch::Tensor MaskedSoftmax(const torch::Tensor& logits, const torch::Tensor& mask, int64_t dim);

// ---------------------------------------------------------------------------------------------
// Capsule dynamic routing (MIND, as the reference's CapsuleNetwork with bilinear_type 0)

enum class RoutingSoftmax { kPositions, kInterests };

struct CapsuleRoutingOptions {
  int64_t input_dim = 0;     // D, the history embedding dim
  int64_t capsule_dim = 0;   // H, the interest capsules' width
  int64_t num_interests = 4;
  int64_t iterations = 3;
  RoutingSoftmax softmax = RoutingSoftmax::kPositions;
};

// u_i = W e_i (one Linear(D, H) without bias shared by all interests: bilinear_type 0). Routing
// logits b [B, I, L] start at `initial_logits`; each iteration
//   w = softmax of b (over the real positions of each interest, or over the interests of each
//       real position), 0 at padding;
//   s_k = sum_i w_ki u_i;  v_k = squash(s_k) = |s_k|^2 / (1 + |s_k|^2) * s_k / sqrt(|s_k|^2 + 1e-9);
//   b_ki += <u_i, v_k>  (all but the last iteration, on a detached u: no gradient through routing).
// The last iteration's v [B, I, H] is the output; gradients reach W and the history only through
// its s = w u. Deliberate difference: the reference takes the softmax over every position and
// then zeroes padding, so its weights depend on the padding's random logits; here padding is
// masked before the softmax (the weights over real positions sum to 1).
class CapsuleRoutingImpl : public torch::nn::Module {
 public:
  explicit CapsuleRoutingImpl(CapsuleRoutingOptions options);

  // history [B, L, D], mask [B, L], initial_logits [B or 1, I, L] -> interests [B, I, H].
  torch::Tensor forward(const torch::Tensor& history, const torch::Tensor& mask, const torch::Tensor& initial_logits);

  const CapsuleRoutingOptions& options() const { return options_; }
  torch::nn::Linear bilinear{nullptr};  // weight [H, D]

 private:
  CapsuleRoutingOptions options_;
};
TORCH_MODULE(CapsuleRouting);

// ---------------------------------------------------------------------------------------------
// Causal self-attention block (SASRec)

struct SelfAttentionBlockOptions {
  int64_t dim = 0;         // model width D
  int64_t num_heads = 1;   // divides D
  int64_t ffn_dim = 0;     // inner width of the point-wise feed-forward network
  double dropout = 0;      // attention weights and feed-forward dropout (training only)
};

// One SASRec block, as the reference (post-LN on the queries, the residual from the normalised
// queries):
//   Q = LN_attn(x);  x = Q + MHA(Q, x, x);  x = LN_ffn(x);
//   x = x + Dropout(W2 Dropout(ReLU(W1 x + b1)) + b2);  x = x * mask.
// MHA is torch's MultiheadAttention (in-projection [3D, D] + bias, heads of D / h, out-projection)
// with attention restricted to earlier-or-same positions that are real items (causal + key
// padding; a padding query attends to itself only, so nothing is NaN; its output is masked).
// The reference masks causally only, so its real positions also attend to padding.
class SelfAttentionBlockImpl : public torch::nn::Module {
 public:
  explicit SelfAttentionBlockImpl(SelfAttentionBlockOptions options);

  // x [B, L, D] (zero at padding), mask [B, L], bias = CausalAttentionBias(mask, L, num_heads)
  // -> [B, L, D].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& bias);
  // The block's output at the last position only, [B, 1, D]: the last query against every key
  // (what a causal model needs for its most recent position, at a fraction of the cost);
  // bias = CausalAttentionBias(mask, 1, num_heads).
  torch::Tensor ForwardLast(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& bias);

  const SelfAttentionBlockOptions& options() const { return options_; }
  torch::nn::LayerNorm attention_norm{nullptr}, ffn_norm{nullptr};  // eps 1e-8, as the reference
  torch::Tensor in_proj_weight, in_proj_bias;                       // [3D, D], [3D]: q, k, v
  torch::nn::Linear out_proj{nullptr}, ffn1{nullptr}, ffn2{nullptr};

 private:
  // Attention of queries q_in [B, Lq, D] (the last Lq positions) over x [B, L, D].
  torch::Tensor Attend(const torch::Tensor& q_in, const torch::Tensor& x, const torch::Tensor& bias);
  torch::Tensor FeedForward(const torch::Tensor& x);
  SelfAttentionBlockOptions options_;
};
TORCH_MODULE(SelfAttentionBlock);

// Additive attention mask [B * num_heads, Lq, L] (one copy per head, batch-major like the heads of
// SelfAttentionBlock): 0 where the query at column L - Lq + i may see key j, -inf elsewhere. A
// query sees the keys at or before its column that are real items, and always itself (so a
// padding query's softmax is defined; its output is masked). Computed once per forward and
// shared by the blocks.
torch::Tensor CausalAttentionBias(const torch::Tensor& mask, int64_t num_queries, int64_t num_heads);

}  // namespace shardrec::models
