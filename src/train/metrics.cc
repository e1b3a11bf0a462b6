#include "train/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace shardrec::train {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// AUC of the samples order[begin, end), already sorted by ascending score. Walking the runs of
// equal scores from the lowest up, each positive of a run beats every negative seen before the
// run and ties (counts 1/2) with the negatives of its own run: mid-rank AUC, exact in double
// for any realistic n (counts < 2^53).
double SortedAuc(const float* scores, const float* labels, const int64_t* order, int64_t begin,
                 int64_t end) {
  double negatives_below = 0, wins = 0, positives = 0;
  for (int64_t i = begin; i < end;) {
    const float s = scores[order[i]];
    double pos = 0, neg = 0;
    for (; i < end && scores[order[i]] == s; ++i) (labels[order[i]] > 0.5f ? pos : neg) += 1;
    wins += pos * (negatives_below + 0.5 * neg);
    negatives_below += neg;
    positives += pos;
  }
  if (positives == 0 || negatives_below == 0) return kNaN;
  return wins / (positives * negatives_below);
}

bool AnyNaN(const float* scores, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (std::isnan(scores[i])) return true;
  return false;
}

}  // namespace

double Auc(const float* scores, const float* labels, int64_t n) {
  if (n <= 0 || AnyNaN(scores, n)) return kNaN;  // NaN would break the sort's ordering
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::sort(order.begin(), order.end(), [scores](int64_t a, int64_t b) { return scores[a] < scores[b]; });
  return SortedAuc(scores, labels, order.data(), 0, n);
}

double LogLoss(const float* probs, const float* labels, int64_t n) {
  if (n <= 0) return kNaN;
  constexpr double kEps = 1e-7;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double p = std::clamp(static_cast<double>(probs[i]), kEps, 1 - kEps);
    const double y = labels[i];
    sum -= y * std::log(p) + (1 - y) * std::log(1 - p);
  }
  return sum / static_cast<double>(n);
}

double MeanSquaredError(const float* preds, const float* labels, int64_t n) {
  if (n <= 0) return kNaN;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (static_cast<double>(preds[i]) - labels[i]) * (static_cast<double>(preds[i]) - labels[i]);
  return sum / static_cast<double>(n);
}

double MeanAbsoluteError(const float* preds, const float* labels, int64_t n) {
  if (n <= 0) return kNaN;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::abs(static_cast<double>(preds[i]) - labels[i]);
  return sum / static_cast<double>(n);
}

// Weighting follows Torch-RecHub's gauc_score (torch_rechub/basic/metric.py): without explicit
// weights, a group's weight is its number of samples, and the result is
// sum(weight * auc) / sum(weight). Torch-RecHub calls sklearn's roc_auc_score on every group,
// which raises on a single-class group; here such groups are skipped (neither AUC nor weight
// counted), the usual GAUC convention.
double Gauc(const float* scores, const float* labels, const uint64_t* groups, int64_t n) {
  if (n <= 0 || AnyNaN(scores, n)) return kNaN;
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::sort(order.begin(), order.end(), [scores, groups](int64_t a, int64_t b) {
    return groups[a] != groups[b] ? groups[a] < groups[b] : scores[a] < scores[b];
  });
  double weighted = 0, weight = 0;
  for (int64_t begin = 0; begin < n;) {
    int64_t end = begin;
    while (end < n && groups[order[end]] == groups[order[begin]]) ++end;
    const double auc = SortedAuc(scores, labels, order.data(), begin, end);
    if (!std::isnan(auc)) {
      const double size = static_cast<double>(end - begin);
      weighted += size * auc;
      weight += size;
    }
    begin = end;
  }
  return weight > 0 ? weighted / weight : kNaN;
}

}  // namespace shardrec::train
