#pragma once
// DIEN, Deep Interest Evolution Network (Zhou et al., AAAI 2019), as Torch-RecHub's
// models/ranking/dien.py. For each behaviour sequence k (history e_1..e_L [B, L, D], right-aligned,
// with its target item t_k [B, D_t] and a negative-sampled sequence e-_1..e-_L):
//   interest extractor: h_1..h_L = GRU(e) over the real steps (MaskedGRU; a history's state starts
//     at zero at its first real step, padding does not matter);
//   auxiliary loss (training only): over the pairs (t, t+1) whose steps are both real,
//     mean BCE(sigmoid(h_t . e_{t+1}), 1) + mean BCE(sigmoid(h_t . e-_{t+1}), 0);
//   interest evolution: a_t = softmax over real t of (h_t W_a) . t_k; an attentional GRU (AUGRU by
//     default; AIGRU or AGRU by gru_type) over h_1..h_L from zero; its final state s_k [B, H].
// Top: logit = MLP([s_1..s_K, t_1..t_K, Flatten(features)]) with Dice hidden layers by default.
// Training loss (Loss): mean BCE(logit, label) + alpha * sum_k aux_k, where aux_k comes from the
// last training-mode forward. The reference returns (prediction, alpha * aux) from forward; here the
// model keeps the term and adds it in Loss, so the trainer needs no special case.
//
// Deliberate differences from the reference:
//   - interest_units may differ from the history's embedding dim; the auxiliary loss then scores
//     h_t through a learned Linear(H, D) (no bias) before the dot product (the reference ties H to D).
//   - gru_type AIGRU and AGRU (the paper's variants) besides AUGRU.
//   - Evaluation forwards skip the auxiliary loss; the reference always computes it.
//   - Steps that are padding in every row of the batch are skipped (same result, less work).
// See interest_gru.h for the recurrent layers.
#include <vector>

#include "models/feature_inputs.h"
#include "models/interest_gru.h"
#include "models/layers.h"
#include "models/model.h"

namespace shardrec::config {
class Dien;
}

namespace shardrec::models {

class DIEN : public Model {
 public:
  // Resolves the feature lists against `schema` (histories: concat sequences; targets: sparse;
  // negatives: concat sequences of the history's dim and length; features: flat, default every
  // flat feature that is not a target). Throws ConfigError naming the field for anything the model
  // cannot take (the config validator reports the same with line numbers first).
  DIEN(const config::Dien& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // logits [B]
  torch::Tensor Loss(const torch::Tensor& outputs, const torch::Tensor& labels) override;

  // The summed auxiliary loss of the last training-mode forward, unweighted; undefined after an
  // evaluation forward or when alpha is 0.
  const torch::Tensor& last_aux_loss() const { return aux_loss_; }
  double alpha() const { return alpha_; }

  struct Behaviour {
    int history = -1;   // schema index of the history sequence
    int target = -1;    // schema index of its target
    int negative = -1;  // schema index of its negative sequence; -1 when there is none (alpha 0)
    MaskedGRU extractor{nullptr};
    InterestEvolution evolution{nullptr};
    torch::nn::Linear aux_projection{nullptr};  // only when hidden size != history dim
  };
  const std::vector<Behaviour>& behaviours() const { return behaviours_; }
  const FeatureGroup& features() const { return features_; }
  bool has_features() const { return !features_.embedded.empty() || !features_.dense_columns.empty(); }
  MLP& mlp() { return mlp_; }

 private:
  torch::Tensor AuxiliaryLoss(Behaviour& b, const torch::Tensor& interests, const ModelInput& input,
                              int64_t first_step);

  std::vector<Behaviour> behaviours_;
  FeatureGroup features_;
  MLP mlp_{nullptr};
  double alpha_;
  torch::Tensor aux_loss_;
};

}  // namespace shardrec::models
