#include "train/topk_metrics.h"

#include <algorithm>
#include <cmath>

namespace shardrec::train {

TopKMetrics::TopKMetrics(std::vector<int> ks) : ks_(std::move(ks)) {
  std::sort(ks_.begin(), ks_.end());
  ks_.erase(std::unique(ks_.begin(), ks_.end()), ks_.end());
  recall_.assign(ks_.size(), 0);
  hit_.assign(ks_.size(), 0);
  ndcg_.assign(ks_.size(), 0);
  mrr_.assign(ks_.size(), 0);
}

void TopKMetrics::Add(const int64_t* ranked, int64_t n, const int64_t* targets, int64_t num_targets) {
  if (num_targets <= 0) return;
  ++queries_;
  // 0-based positions of the hits among the first max_k, ascending.
  std::vector<int64_t> hit_positions;
  const int64_t depth = std::min<int64_t>(n, max_k());
  for (int64_t j = 0; j < depth; ++j) {
    if (ranked[j] < 0) continue;
    if (std::find(targets, targets + num_targets, ranked[j]) != targets + num_targets) hit_positions.push_back(j);
  }
  for (size_t i = 0; i < ks_.size(); ++i) {
    const int64_t k = ks_[i];
    double dcg = 0, idcg = 0;
    int64_t hits = 0;
    for (int64_t j : hit_positions) {
      if (j >= k) break;
      ++hits;
      dcg += 1.0 / std::log2(static_cast<double>(j) + 2.0);
    }
    for (int64_t j = 0; j < std::min<int64_t>(k, num_targets); ++j) idcg += 1.0 / std::log2(static_cast<double>(j) + 2.0);
    recall_[i] += static_cast<double>(hits) / static_cast<double>(num_targets);
    hit_[i] += hits > 0 ? 1.0 : 0.0;
    ndcg_[i] += dcg / idcg;
    mrr_[i] += hits > 0 ? 1.0 / (static_cast<double>(hit_positions[0]) + 1.0) : 0.0;
  }
}

std::map<std::string, double> TopKMetrics::Result() const {
  std::map<std::string, double> m;
  const double q = static_cast<double>(std::max<int64_t>(queries_, 1));
  for (size_t i = 0; i < ks_.size(); ++i) {
    const std::string k = std::to_string(ks_[i]);
    m["recall@" + k] = recall_[i] / q;
    m["hit@" + k] = hit_[i] / q;
    m["ndcg@" + k] = ndcg_[i] / q;
    m["mrr@" + k] = mrr_[i] / q;
  }
  m["queries"] = static_cast<double>(queries_);
  return m;
}

}  // namespace shardrec::train
