#include "train/match_loss.h"

#include <limits>
#include <vector>

namespace shardrec::train {

Candidates AssembleCandidates(const torch::Tensor& sampled_scores, const torch::Tensor& sampled_items,
                              const torch::Tensor& in_batch_scores, const torch::Tensor& positive_items) {
  const int64_t p = positive_items.size(0);
  std::vector<torch::Tensor> l, v, c;
  if (sampled_scores.defined()) {
    l.push_back(sampled_scores);
    v.push_back(torch::cat({torch::ones({p, 1}, torch::kBool), sampled_items.ge(0)}, 1));
    c.push_back(torch::cat({positive_items.unsqueeze(1), sampled_items}, 1));
  }
  if (in_batch_scores.defined()) {
    if (!sampled_scores.defined()) {  // the positive column comes from the diagonal
      l.push_back(in_batch_scores.diagonal().unsqueeze(1));
      v.push_back(torch::ones({p, 1}, torch::kBool));
      c.push_back(positive_items.unsqueeze(1));
    }
    l.push_back(in_batch_scores);
    // Leaves out the row itself and the rows whose positive is the same item (accidental hits).
    v.push_back(positive_items.unsqueeze(1).ne(positive_items.unsqueeze(0)));
    c.push_back(positive_items.unsqueeze(0).expand({p, p}));
  }
  auto join = [](std::vector<torch::Tensor>& parts) { return parts.size() == 1 ? parts[0] : torch::cat(parts, 1); };
  return {join(l), join(v), join(c)};
}

torch::Tensor ListwiseLoss(const torch::Tensor& logits, const torch::Tensor& valid) {
  torch::Tensor masked = logits.masked_fill(valid.logical_not(), -std::numeric_limits<float>::infinity());
  return -torch::log_softmax(masked, 1).select(1, 0).mean();
}

torch::Tensor PairwiseLoss(const torch::Tensor& logits, const torch::Tensor& valid, PairLoss kind, double margin) {
  const int64_t negatives = logits.size(1) - 1;
  torch::Tensor diff = logits.narrow(1, 0, 1) - logits.narrow(1, 1, negatives);  // [R, C - 1]
  torch::Tensor loss = kind == PairLoss::kBpr ? torch::softplus(-diff) : torch::relu(margin - diff);
  torch::Tensor keep = valid.narrow(1, 1, negatives).to(loss.dtype());
  return (loss * keep).sum() / keep.sum().clamp_min(1);
}

torch::Tensor PointwiseLoss(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& valid) {
  torch::Tensor keep = valid.to(logits.dtype());
  torch::Tensor loss = torch::binary_cross_entropy_with_logits(logits, targets, {}, {}, at::Reduction::None);
  return (loss * keep).sum() / keep.sum().clamp_min(1);
}

torch::Tensor LogExpectedCount(const torch::Tensor& items, const torch::Tensor& in_batch_share, double in_batch_negatives,
                               const torch::Tensor& sampled_probability, double sampled_negatives) {
  torch::Tensor known = items.ge(0);
  torch::Tensor index = items.clamp_min(0).reshape({-1});
  torch::Tensor expected = torch::zeros({index.size(0)}, torch::kFloat32);
  if (in_batch_share.defined() && in_batch_negatives > 0)
    expected += in_batch_negatives * in_batch_share.index_select(0, index).to(torch::kFloat32);
  if (sampled_probability.defined() && sampled_negatives > 0)
    expected += sampled_negatives * sampled_probability.index_select(0, index).to(torch::kFloat32);
  torch::Tensor log_expected = expected.clamp_min(1e-30).log().reshape(items.sizes());
  return log_expected.masked_fill(known.logical_not(), 0);
}

}  // namespace shardrec::train
