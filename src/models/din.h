#pragma once
// DIN, Deep Interest Network (Zhou et al., KDD 2018), as Torch-RecHub's models/ranking/din.py:
//   for each history field i with target t_i (e.g. hist_item_id with item_id):
//     w_il   = ActivationUnit_i(t_i, h_il)     MLP(attention_units, activation) on
//                                               [t, h, t - h, t * h] -> Linear(., 1), per position
//     pool_i = sum_l w_il h_il                 (no softmax, as the paper and the reference)
//   logit = MLP([pool_1..pool_k, t_1..t_k, other features])   (activation: dice by default)
// Config: model.din { history_features, target_features, features, attention_units ([36]),
// activation (DICE; attention units and top MLP), mlp (dims [256, 128]; an explicit
// mlp.activation overrides `activation` for the top MLP), use_softmax }.
//
// Differences from the reference:
//   - Padded history positions are masked (reference defect: it scores and pools them, so its
//     output depends on how much padding a row has): they get no weight and no part in the
//     attention MLP's batch-norm statistics. Adding padding never changes the output.
//   - The activation unit is evaluated in an algebraically equal but much cheaper form, at the
//     real positions only (see ActivationUnit in sequence_layers.h).
//   - `features` empty means every sparse, dense and mean/sum-pooled sequence feature that is not
//     a target; the reference example passes the targets again there (duplicating them in the
//     MLP input). List them in `features` to get that.
#include <vector>

#include "models/layers.h"
#include "models/model.h"
#include "models/sequence_layers.h"

namespace shardrec::config {
class Din;
}

namespace shardrec::models {

class Din : public Model {
 public:
  // Throws ConfigError (see ResolveBehaviourFeatures, ActivationUnit, MLPImpl).
  Din(const config::Din& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // logits [B]

  const BehaviourFeatures& features() const { return features_; }
  ActivationUnit& attention(size_t i) { return attention_[i]; }
  MLP& mlp() { return mlp_; }

 private:
  BehaviourFeatures features_;
  std::vector<ActivationUnit> attention_;  // one per history field: attention<i>
  MLP mlp_{nullptr};
};

}  // namespace shardrec::models
