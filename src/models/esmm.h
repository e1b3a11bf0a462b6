#pragma once
// ESMM, Entire Space Multi-task Model (Ma et al., SIGIR 2018), as Torch-RecHub's
// models/multi_task/esmm.py:
//   x = Flatten(features)              the reference concatenates user and item embeddings
//   [h = bottom MLP(x)]                optional shared layers (the seed's hidden_units); the
//                                      reference has none, and then h = x
//   a = CTR tower(h), b = CVR tower(h) MLPs with output layer (default hidden dims [16, 8])
//   pCTR = sigmoid(a), pCVR = sigmoid(b), pCTCVR = pCTR * pCVR.
// Two tasks on the label columns (click, purchase), where purchase implies click:
//   forward returns the logits [B, 2] = [a, b]; Predict gives [pCTR, pCTCVR] (metrics: AUC of pCTR
//   on click, of pCTCVR on purchase); Loss = c_1 BCE(pCTR, click) + c_2 BCE(pCTCVR, click *
//   purchase) over every impression (default c = 1, 1, the reference's plain sum). pCVR never
//   meets a label of its own: that is the model's point (no sample selection bias); read it as
//   sigmoid(forward(x)[:, 1]).
// Differences from the reference: it returns [pCVR, pCTR, pCTCVR] against three label columns
// (cvr, ctr, ctcvr) and trains on the last two; here the labels are the two raw columns and the
// CTCVR label is their product. The CTCVR BCE is computed from the logits in log space,
// -log p = softplus(-a) + softplus(-b), log(1 - p) = log p + logsumexp(-a, -b, -a-b), which
// equals BCE on the product without its overflow where p reaches 0 or 1 in float.
#include <vector>

#include "models/feature_inputs.h"
#include "models/layers.h"
#include "models/multitask_layers.h"
#include "models/multitask_model.h"

namespace shardrec::config {
class Esmm;
}

namespace shardrec::models {

class Esmm : public MultiTaskModel {
 public:
  // Empty features take every sparse, mean/sum-pooled sequence and dense feature. Throws
  // ConfigError unless the schema has two label columns (or none, in tests).
  Esmm(const config::Esmm& config, const data::FeatureSchema& schema);

  torch::Tensor forward(const ModelInput& input) override;  // logits [B, 2]: CTR, CVR
  torch::Tensor Predict(const torch::Tensor& outputs) override;  // [pCTR, pCTCVR]
  // [BCE(pCTR, click), BCE(pCTCVR, click * purchase)].
  torch::Tensor TaskLosses(const torch::Tensor& outputs, const torch::Tensor& labels) override;
  // The bottom's last Linear; none without a bottom.
  std::vector<torch::Tensor> SharedLayerWeights() override;

  const FeatureGroup& features() const { return features_; }
  bool has_bottom() const { return !bottom_.is_empty(); }
  MLP& bottom() { return bottom_; }
  TaskTowers& towers() { return towers_; }  // tower 0: CTR, tower 1: CVR

 private:
  FeatureGroup features_;
  MLP bottom_{nullptr};
  TaskTowers towers_{nullptr};
  torch::Tensor bottom_last_weight_;
};

}  // namespace shardrec::models
