#pragma once
// BST, Behavior Sequence Transformer (Chen et al., DLP-KDD 2019), as Torch-RecHub's
// models/ranking/bst.py:
//   item step j   = [h_1j, ..., h_kj]  (the history fields concatenated, width d = sum of dims)
//   tokens        = [step_1, ..., step_L, target] + position embedding   (target = [t_1..t_k])
//   x             = TransformerEncoder(tokens, key padding mask)  num_layers post-LN layers:
//                   x = LN(x + Dropout(MHA(x))); x = LN(x + Dropout(FFN(x))),
//                   FFN = Linear(d, hidden_size) -> LeakyReLU(0.01) -> Dropout -> Linear(., d)
//   logit         = MLP([x at the target token, t_1..t_k, other features])
// Config: model.bst { history_features, target_features, features, num_heads (8), num_layers (1),
// hidden_size (2048), dropout_rate (0.2), max_seq_len (51), mlp (dims [256, 128]) }.
// A step is padding where every history is padding (as the reference); padded keys get no
// attention weight, the target token is never masked.
//
// Differences from the reference:
//   - Positions count back from the target (target 0, most recent item 1, ...), so that they do
//     not depend on how much padding a row has: ShardRec right-aligns histories, and an absolute
//     index would shift every item when max_len grows. (The reference example left-aligns its
//     histories and numbers tokens from the start of the padded array, target last.)
//   - Only what the output needs is computed: the last layer runs its attention for the target
//     query alone and its feed-forward on the target token alone (the reference computes all
//     L + 1 tokens, then keeps one); earlier layers run the feed-forward at real tokens only.
//   - `features` empty means every sparse, dense and mean/sum-pooled sequence feature that is not
//     a target (see din.h).
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "models/layers.h"
#include "models/model.h"
#include "models/sequence_layers.h"

namespace shardrec::config {
class Bst;
}

namespace shardrec::models {

// One post-LN transformer encoder layer, computing what torch.nn.TransformerEncoderLayer(d_model,
// nhead, dim_feedforward, dropout, activation=LeakyReLU(), batch_first=True) does with a key
// padding mask. Parameters: in_proj_weight [3d, d] and in_proj_bias [3d] (query, key, value),
// out_proj, linear1, linear2, norm1, norm2, initialised as torch does.
class TransformerEncoderLayerImpl : public torch::nn::Module {
 public:
  TransformerEncoderLayerImpl(int64_t d_model, int64_t num_heads, int64_t hidden_size, double dropout);

  // x [B, T, d], mask [B, T] (true = a key that may be attended) -> [B, T, d]. Outputs at masked
  // query positions are not meaningful (they are left after the attention block).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);
  // The output at the last token only: [B, d]. Equals forward(x, mask)[:, -1].
  torch::Tensor ForLastToken(const torch::Tensor& x, const torch::Tensor& mask);

  torch::Tensor in_proj_weight, in_proj_bias;
  torch::nn::Linear out_proj{nullptr}, linear1{nullptr}, linear2{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};

 private:
  // Residual + norm1, feed-forward, residual + norm2, for tokens given as rows [n, d].
  torch::Tensor AfterAttention(const torch::Tensor& x, const torch::Tensor& attended);
  torch::Tensor Dropped(const torch::Tensor& x);

  int64_t d_, heads_;
  double dropout_;
};
TORCH_MODULE(TransformerEncoderLayer);

class Bst : public Model {
 public:
  // Throws ConfigError (see ResolveBehaviourFeatures, MLPImpl) also for num_heads not dividing
  // the item width, max_seq_len < max_len + 1, and non-positive sizes.
  Bst(const config::Bst& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // logits [B]

  const BehaviourFeatures& features() const { return features_; }
  TransformerEncoderLayer& layer(size_t i) { return layers_[i]; }
  size_t num_layers() const { return layers_.size(); }
  torch::nn::Embedding& position_embedding() { return positions_; }
  MLP& mlp() { return mlp_; }

 private:
  BehaviourFeatures features_;
  torch::nn::Embedding positions_{nullptr};
  std::vector<TransformerEncoderLayer> layers_;  // layer<i>
  MLP mlp_{nullptr};
};

}  // namespace shardrec::models
