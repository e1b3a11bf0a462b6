#pragma once
// Evaluation metrics over whole evaluation sets: ROC AUC, group AUC and log loss. Plain C++ over
// raw arrays (no torch), so they are easy to test and to call from any evaluation loop.
#include <cstdint>

namespace shardrec::train {

// Exact ROC AUC: the probability that a random positive scores above a random negative, a tie
// counting one half (mid-ranks; equals sklearn's roc_auc_score). A label > 0.5 is positive.
// NaN when only one class is present, when n == 0, or when a score is NaN. O(n log n).
double Auc(const float* scores, const float* labels, int64_t n);

// Mean binary cross-entropy -[y log p + (1 - y) log(1 - p)], p clipped to [1e-7, 1 - 1e-7].
// NaN when n == 0.
double LogLoss(const float* probs, const float* labels, int64_t n);

// Group AUC: the AUC of each group (e.g. user) weighted by the group's sample count, over the
// groups that hold both classes (single-class groups have no AUC and are skipped, weight
// included). NaN when no group holds both classes. O(n log n).
double Gauc(const float* scores, const float* labels, const uint64_t* groups, int64_t n);

// Mean (p - y)^2 and mean |p - y| of regression tasks. NaN when n == 0.
double MeanSquaredError(const float* preds, const float* labels, int64_t n);
double MeanAbsoluteError(const float* preds, const float* labels, int64_t n);

}  // namespace shardrec::train
