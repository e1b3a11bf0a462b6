#pragma once
// EDCN (Chen et al., DLP-KDD 2021, "Enhancing Explicit and Implicit Feature Interactions via
// Information Sharing for Parallel Deep CTR Models"), as Torch-RecHub's models/ranking/edcn.py.
// With x = Flatten(features) [B, D] (embeddings in list order, then dense values; each dense
// feature is a field of width 1, as the reference's DenseFeature(embed_dim=1)) and L = cross_num:
//   (c, d) = Regulation_0(x);  c0 = c
//   for l in 0..L-1:
//     if l > 0: (c, d) = Regulation_l(bridge)
//     c      = c + c0 * (c . w_l) + b_l           (DCN's cross layer, VectorCrossNet::Layer)
//     d      = DeepBlock_l(d)                     (MLP with dims [D, D], no output layer)
//     bridge = Bridge_l(c, d)
//   logit = LR([c, d, bridge])                    (LR over 3D)
// Regulation_l(z) = (g_cross (.) z, g_deep (.) z): two learned gates over the fields, each a
// softmax over the fields at temperature tau (`temperature`), times the number of fields it spans
// (so that uniform gates are 1), expanded to the fields' widths:
//   FGU (field-wise, default): weights w [F];    g_f = F * softmax_f(w / tau), the same for every
//                              bit of field f;
//   BGU (bit-wise):            weights w [F, W]; g_{f,k} = F_k * softmax_f(w_{.,k} / tau) over the
//                              F_k fields wider than k, so every bit position has its own field
//                              distribution (W = the widest field).
// Weights start at 1, so the gates start as the identity.
// Bridge (c, d): HADAMARD_PRODUCT c (.) d (default); ADD c + d; CONCAT ReLU(Linear(2D -> D)([c, d]));
// ATTENTION_POOLING a(c) (.) c + a'(d) (.) d with a(z) = softmax(Linear(ReLU(Linear(z)))) (the
// second Linear without bias), one attention net per side.
// Deliberate differences:
// - Reference defect: its gate takes a softmax over a single scalar per field, so every gate is 1
//   and regulation does nothing; here the gates are softmaxes over the fields, as in the paper.
//   use_regulation_module: false gives the reference's output.
// - The softmax is scaled by the number of fields (mean gate 1). The paper's (and the authors'
//   code's) plain softmax shrinks the input F-fold (1/39 on Criteo); the cross branch then
//   starts near zero and grows fast, the batch-norm running statistics of the deep blocks lag
//   behind, and eval-mode predictions come out badly overconfident: validation logloss 0.95 vs
//   0.46 (at the same AUC, 0.789 vs 0.788) with configs/edcn.pbtxt, one epoch. The constant
//   factor changes no ratio between fields.
// - The reference applies its per-field gates in feature-list order to a layout that puts dense
//   values last; here gate and layout agree.
#include <torch/nn/modules/linear.h>

#include <utility>
#include <vector>

#include "models/cross_layers.h"
#include "models/feature_inputs.h"
#include "models/layers.h"
#include "models/model.h"

namespace shardrec::config {
class Edcn;
}

namespace shardrec::models {

enum class GateKind { kFieldWise, kBitWise };

// The regulation module's pair of gates over fields of the given widths (sum = D).
// Parameters cross_gate and deep_gate: [F] field-wise, [F, W] bit-wise.
class RegulationImpl : public torch::nn::Module {
 public:
  // Throws ConfigError unless temperature > 0 and every width >= 1.
  RegulationImpl(std::vector<int64_t> field_widths, GateKind kind, double temperature);
  // (cross input, deep input), each [B, D].
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x);
  // The expanded gates [D]: per column, the weight of its field (and bit).
  torch::Tensor CrossGate() const { return Expand(cross_gate_); }
  torch::Tensor DeepGate() const { return Expand(deep_gate_); }

 private:
  torch::Tensor Expand(const torch::Tensor& weights) const;

  GateKind kind_;
  double temperature_;
  torch::Tensor cross_gate_, deep_gate_;
  torch::Tensor column_source_;  // int64 [D]: for each column, its entry of the softmax output
  torch::Tensor invalid_bits_;   // bool [F, W] (bit-wise): bits beyond a field's width
  torch::Tensor fields_per_bit_;  // float [1, W] (bit-wise) or [1] (field-wise): the softmax's span
};
TORCH_MODULE(Regulation);

enum class BridgeKind { kHadamardProduct, kAdd, kConcat, kAttentionPooling };

// Joins the cross and deep outputs of one layer, [B, D] x [B, D] -> [B, D].
class BridgeImpl : public torch::nn::Module {
 public:
  BridgeImpl(int64_t dim, BridgeKind kind);
  torch::Tensor forward(const torch::Tensor& cross, const torch::Tensor& deep);

  BridgeKind kind() const { return kind_; }

 private:
  torch::Tensor Attention(torch::nn::Linear& hidden, torch::nn::Linear& score, const torch::Tensor& z);

  BridgeKind kind_;
  torch::nn::Linear concat_{nullptr};                                  // kConcat
  torch::nn::Linear cross_hidden_{nullptr}, cross_score_{nullptr};    // kAttentionPooling
  torch::nn::Linear deep_hidden_{nullptr}, deep_score_{nullptr};
};
TORCH_MODULE(Bridge);

class Edcn : public Model {
 public:
  // Empty `features` take every sparse, mean/sum-pooled sequence and dense feature. Throws
  // ConfigError for cross_num < 1, temperature <= 0, or mlp.dims given (the deep blocks are
  // [D, D]) (see also ResolveFeatures, MLPImpl).
  Edcn(const config::Edcn& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // logits [B]

  const FeatureGroup& features() const { return features_; }
  const std::vector<int64_t>& field_widths() const { return field_widths_; }
  VectorCrossNet& cross() { return *cross_; }
  MLP& deep(size_t l) { return deep_[l]; }
  Bridge& bridge(size_t l) { return bridges_[l]; }
  Regulation& regulation(size_t l) { return regulations_[l]; }  // only when uses_regulation()
  bool uses_regulation() const { return !regulations_.empty(); }
  LR& linear() { return linear_; }

 private:
  std::pair<torch::Tensor, torch::Tensor> Regulate(size_t l, const torch::Tensor& z);

  FeatureGroup features_;
  std::vector<int64_t> field_widths_;  // embedded features' dims, then 1 per dense feature
  std::shared_ptr<VectorCrossNet> cross_;
  std::vector<MLP> deep_;
  std::vector<Bridge> bridges_;
  std::vector<Regulation> regulations_;
  LR linear_{nullptr};
};

}  // namespace shardrec::models
