// Top-K metrics against hand-worked examples (ties included), exact top-K against a full sort
// (block merging, exclusions, multi-interest users), and faiss against exact when faiss is built.
//
// Tie rule: equal scores rank the lower catalogue index first (ExactTopK); the metrics read the
// ranked list as given.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/error.h"
#include "train/retrieval.h"
#include "train/topk_metrics.h"

namespace shardrec::train {
namespace {

double InvLog2(double position) { return 1.0 / std::log2(position + 2.0); }  // 0-based position

TEST(TopKMetricsTest, HandWorkedExampleWithTiesAndSeveralTargets) {
  // Six items scored by one-dimensional vectors: query 0 (u = 1) sees the item values, query 1
  // (u = -1) their negation. Items 1, 2, 4 tie at 0.9 (and at -0.9).
  torch::Tensor items = torch::tensor({0.5, 0.9, 0.9, 0.1, 0.9, 0.3}).unsqueeze(1);
  torch::Tensor users = torch::tensor({1.0, -1.0}).unsqueeze(1);
  TopK top = ExactTopK(items, users, 5, nullptr, 8);
  // Query 0: 1, 2, 4 (tied, by index), 0, 5. Query 1: 3, 5, 0, then 1, 2 of the tied 1, 2, 4.
  EXPECT_TRUE(torch::equal(top.items, torch::tensor({{1, 2, 4, 0, 5}, {3, 5, 0, 1, 2}}, torch::kInt64))) << top.items;

  TopKMetrics m({1, 3, 5});
  const int64_t target0 = 4, target1 = 2;  // at positions 2 and 4
  torch::Tensor ranked = top.items.contiguous();
  m.Add(ranked.data_ptr<int64_t>(), 5, &target0, 1);
  m.Add(ranked.data_ptr<int64_t>() + 5, 5, &target1, 1);
  // A third query with three targets, two of them ranked: 3 at position 1, 1 at position 3.
  const std::vector<int64_t> list = {7, 3, 9, 1, 6};
  const std::vector<int64_t> targets = {3, 1, 8};
  m.Add(list.data(), 5, targets.data(), 3);

  auto r = m.Result();
  EXPECT_EQ(r["queries"], 3);
  EXPECT_NEAR(r["hit@1"], 0, 1e-12);
  EXPECT_NEAR(r["recall@1"], 0, 1e-12);
  EXPECT_NEAR(r["hit@3"], (1 + 0 + 1) / 3.0, 1e-12);
  EXPECT_NEAR(r["recall@3"], (1 + 0 + 1.0 / 3) / 3, 1e-12);
  EXPECT_NEAR(r["mrr@3"], (1.0 / 3 + 0 + 1.0 / 2) / 3, 1e-12);
  const double ndcg3_q2 = InvLog2(1) / (InvLog2(0) + InvLog2(1) + InvLog2(2));
  EXPECT_NEAR(r["ndcg@3"], (InvLog2(2) + 0 + ndcg3_q2) / 3, 1e-12);
  EXPECT_NEAR(r["hit@5"], 1, 1e-12);
  EXPECT_NEAR(r["recall@5"], (1 + 1 + 2.0 / 3) / 3, 1e-12);
  EXPECT_NEAR(r["mrr@5"], (1.0 / 3 + 1.0 / 5 + 1.0 / 2) / 3, 1e-12);
  const double ndcg5_q2 = (InvLog2(1) + InvLog2(3)) / (InvLog2(0) + InvLog2(1) + InvLog2(2));
  EXPECT_NEAR(r["ndcg@5"], (InvLog2(2) + InvLog2(4) + ndcg5_q2) / 3, 1e-12);
}

// The reference: every score, sorted by (score desc, index asc).
std::vector<std::vector<int64_t>> FullSort(const torch::Tensor& scores, int64_t k) {
  std::vector<std::vector<int64_t>> out;
  auto s = scores.accessor<float, 2>();
  for (int64_t q = 0; q < scores.size(0); ++q) {
    std::vector<int64_t> idx(scores.size(1));
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return s[q][a] > s[q][b]; });
    std::vector<int64_t> top;
    for (int64_t j = 0; j < k && j < static_cast<int64_t>(idx.size()); ++j)
      top.push_back(std::isinf(s[q][idx[j]]) ? -1 : idx[j]);
    out.push_back(top);
  }
  return out;
}

std::vector<std::vector<int64_t>> Rows(const torch::Tensor& t) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t q = 0; q < t.size(0); ++q) {
    torch::Tensor row = t[q].contiguous();
    out.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  }
  return out;
}

TEST(ExactTopKTest, BlocksAndBatchesGiveTheFullSortWithManyTies) {
  torch::manual_seed(1);
  // Scores on a coarse grid: many ties, across block boundaries too.
  torch::Tensor items = torch::randint(-3, 4, {103, 2}).to(torch::kFloat);
  torch::Tensor users = torch::randint(-2, 3, {17, 2}).to(torch::kFloat);
  const auto expected = FullSort(users.matmul(items.t()), 12);
  for (int64_t block : {1, 7, 50, 1000}) {
    for (int64_t batch : {1, 5, 64}) {
      TopK top = ExactTopK(items, users, 12, nullptr, batch, block);
      EXPECT_EQ(Rows(top.items), expected) << "block " << block << " batch " << batch;
    }
  }
}

TEST(ExactTopKTest, ExclusionsAndShortCatalogues) {
  torch::Tensor items = torch::tensor({0.1, 0.4, 0.3, 0.2}).unsqueeze(1);
  torch::Tensor users = torch::ones({2, 1});
  const std::vector<int64_t> excluded = {1, 2, 0};
  const std::vector<int64_t> offsets = {0, 2, 3};  // query 0 drops 1 and 2, query 1 drops 0
  Exclusions ex{excluded.data(), offsets.data()};
  TopK top = ExactTopK(items, users, 4, &ex, 8, 3);
  EXPECT_TRUE(torch::equal(top.items, torch::tensor({{3, 0, -1, -1}, {1, 2, 3, -1}}, torch::kInt64))) << top.items;
  EXPECT_TRUE(std::isinf(top.scores[0][2].item<float>()));
}

TEST(ExactTopKTest, MultiInterestUsersScoreByTheirBestInterest) {
  torch::manual_seed(2);
  torch::Tensor items = torch::randn({40, 4});
  torch::Tensor users = torch::randn({6, 3, 4});  // three interests
  torch::Tensor best = std::get<0>(torch::matmul(users, items.t()).max(1));  // [6, 40]
  TopK top = ExactTopK(items, users, 7, nullptr, 4, 16);
  EXPECT_EQ(Rows(top.items), FullSort(best, 7));
}

TEST(FaissTopKTest, AgreesWithExact) {
  torch::manual_seed(3);
  torch::Tensor items = torch::randn({2000, 16});
  torch::Tensor users = torch::randn({60, 16});
  if (!FaissAvailable()) {
    EXPECT_THROW(FaissTopK(items, users, 10, nullptr, "Flat", 1, 64), UserError);
    GTEST_SKIP() << "this build has no faiss";
  }
  TopK exact = ExactTopK(items, users, 10, nullptr, 64);
  TopK flat = FaissTopK(items, users, 10, nullptr, "Flat", 1, 64);
  EXPECT_TRUE(torch::equal(flat.items, exact.items));
  EXPECT_TRUE(torch::allclose(flat.scores, exact.scores, 1e-4, 1e-4));
  // An IVF index that visits every list is exact too.
  TopK ivf = FaissTopK(items, users, 10, nullptr, "IVF16,Flat", 16, 64);
  EXPECT_TRUE(torch::equal(ivf.items, exact.items));

  // Exclusions and multi-interest users.
  std::vector<int64_t> excluded, offsets = {0};
  torch::Tensor exact_items = exact.items.contiguous();
  for (int64_t q = 0; q < 60; ++q) {
    excluded.push_back(exact_items[q][0].item<int64_t>());  // drop each query's best item
    excluded.push_back(exact_items[q][3].item<int64_t>());
    offsets.push_back(static_cast<int64_t>(excluded.size()));
  }
  Exclusions ex{excluded.data(), offsets.data()};
  EXPECT_TRUE(torch::equal(FaissTopK(items, users, 10, &ex, "Flat", 1, 64).items, ExactTopK(items, users, 10, &ex, 64).items));
  torch::Tensor multi = torch::randn({20, 3, 16});
  EXPECT_TRUE(torch::equal(FaissTopK(items, multi, 10, nullptr, "Flat", 1, 8).items, ExactTopK(items, multi, 10, nullptr, 8).items));
  EXPECT_THROW(FaissTopK(items, users, 10, nullptr, "NoSuchIndex", 1, 64), ConfigError);
}

}  // namespace
}  // namespace shardrec::train
