#pragma once
// Top-K retrieval metrics over queries, each a ranked list (best first) and a set of target
// items, for several K at once. Per query, with hits = targets among the first K:
//   Recall@K = |hits| / |targets|
//   Hit@K    = 1 if any target is among the first K, else 0 (the hit rate)
//   NDCG@K   = sum over hits at 0-based position j of 1 / log2(j + 2), divided by the same sum
//              for an ideal list (positions 0 .. min(K, |targets|) - 1)
//   MRR@K    = 1 / (1 + position of the first hit), 0 without a hit
// each averaged over queries (a query without targets is skipped). With one target per query
// (leave-last-out) Recall@K equals Hit@K, and both equal Torch-RecHub's "Hit" (hits over all
// targets). Ties between equal scores are settled by whoever ranked the list (retrieval: the
// lower catalogue index first).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace shardrec::train {

class TopKMetrics {
 public:
  explicit TopKMetrics(std::vector<int> ks);

  // `ranked`: n items, best first (-1 entries are holes: nothing ranked there). `targets`:
  // distinct items.
  void Add(const int64_t* ranked, int64_t n, const int64_t* targets, int64_t num_targets);

  // "recall@K", "hit@K", "ndcg@K", "mrr@K" per K, and "queries".
  std::map<std::string, double> Result() const;

  int max_k() const { return ks_.empty() ? 0 : ks_.back(); }
  const std::vector<int>& ks() const { return ks_; }

 private:
  std::vector<int> ks_;  // ascending, distinct
  std::vector<double> recall_, hit_, ndcg_, mrr_;
  int64_t queries_ = 0;
};

}  // namespace shardrec::train
