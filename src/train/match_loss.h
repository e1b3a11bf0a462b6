#pragma once
// The matching losses over candidate scores. A row's candidates are its positive item (column 0)
// and its negatives (sampled, in-batch, or both); `valid` [R, C] marks the negatives that count
// (false: a draw that failed its exclusions, or an in-batch item equal to the row's positive or
// the row itself). Column 0 is always valid. Scores are logits: cos / temperature, minus the
// log-Q correction when it is on.
#include <torch/torch.h>

namespace shardrec::train {

// The candidates of a step's positive rows, scored: column 0 the row's positive item, then its
// sampled negatives, then (in-batch) the items of every positive row of the batch, the row's own
// and those equal to its positive marked invalid.
struct Candidates {
  torch::Tensor logits;  // [P, C]
  torch::Tensor valid;   // [P, C] bool
  torch::Tensor items;   // [P, C] int64 catalogue indices (-1: a failed draw)
};

// `sampled_scores`: Score(users, [positive, sampled]) [P, 1 + K] and `sampled_items` [P, K] (-1 =
// no item), both undefined without sampled negatives. `in_batch_scores`: Score(users,
// positives [1, P, D]) [P, P] (row b's positive at column b), undefined without in-batch
// negatives. `positive_items` [P].
Candidates AssembleCandidates(const torch::Tensor& sampled_scores, const torch::Tensor& sampled_items,
                              const torch::Tensor& in_batch_scores, const torch::Tensor& positive_items);

// Softmax cross-entropy with the positive as target, invalid columns left out; mean over rows.
torch::Tensor ListwiseLoss(const torch::Tensor& logits, const torch::Tensor& valid);

enum class PairLoss { kBpr, kHinge };

// Mean over the valid (positive, negative) pairs of a row set: BPR -log sigmoid(s+ - s-), or
// hinge max(0, margin - (s+ - s-)).
torch::Tensor PairwiseLoss(const torch::Tensor& logits, const torch::Tensor& valid, PairLoss kind, double margin);

// Binary cross-entropy with logits, mean over the valid entries; any shapes alike.
torch::Tensor PointwiseLoss(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& valid);

// Sampling-bias correction (Yi et al., RecSys 2019; sampled softmax): the log of how many times
// each candidate item is expected among a row's negatives,
//   log(in_batch_negatives * in_batch_share[item] + sampled_negatives * sampled_probability[item]),
// to subtract from its score. `items`: catalogue indices (any shape; -1 gives 0); the two
// distributions are [N] over the catalogue (undefined when that source is off).
torch::Tensor LogExpectedCount(const torch::Tensor& items, const torch::Tensor& in_batch_share, double in_batch_negatives,
                               const torch::Tensor& sampled_probability, double sampled_negatives);

}  // namespace shardrec::train
