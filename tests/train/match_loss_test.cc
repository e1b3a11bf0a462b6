// The matching losses and the candidate assembly against hand computations: list-wise softmax
// CE, BPR, hinge, point-wise BCE (with masks), sampled and in-batch candidates, and the log-Q
// correction.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "train/match_loss.h"

namespace shardrec::train {
namespace {

double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

TEST(MatchLossTest, ListwiseIsSoftmaxCrossEntropyOverTheValidColumns) {
  torch::Tensor logits = torch::tensor({{2.0, 1.0, 0.0}, {0.5, 3.0, -1.0}});
  torch::Tensor valid = torch::tensor({{true, true, true}, {true, false, true}});
  const double row0 = -std::log(std::exp(2.0) / (std::exp(2.0) + std::exp(1.0) + std::exp(0.0)));
  const double row1 = -std::log(std::exp(0.5) / (std::exp(0.5) + std::exp(-1.0)));  // 3.0 is masked
  EXPECT_NEAR(ListwiseLoss(logits, valid).item<double>(), (row0 + row1) / 2, 1e-6);
}

TEST(MatchLossTest, BprAndHingeAverageTheValidPairs) {
  torch::Tensor logits = torch::tensor({{2.0, 1.0, 0.0}, {0.5, 3.0, -1.0}});
  torch::Tensor valid = torch::tensor({{true, true, true}, {true, false, true}});
  // Pairs: 2 - 1, 2 - 0, 0.5 - (-1).
  const double bpr = (-std::log(Sigmoid(1.0)) - std::log(Sigmoid(2.0)) - std::log(Sigmoid(1.5))) / 3;
  EXPECT_NEAR(PairwiseLoss(logits, valid, PairLoss::kBpr, 0).item<double>(), bpr, 1e-6);
  const double hinge = (std::max(0.0, 1.2 - 1.0) + std::max(0.0, 1.2 - 2.0) + std::max(0.0, 1.2 - 1.5)) / 3;
  EXPECT_NEAR(PairwiseLoss(logits, valid, PairLoss::kHinge, 1.2).item<double>(), hinge, 1e-6);
}

TEST(MatchLossTest, PointwiseIsBceOverTheValidEntries) {
  torch::Tensor logits = torch::tensor({1.5, -0.5, 2.0, 0.3});
  torch::Tensor targets = torch::tensor({1.0, 0.0, 0.0, 1.0});
  torch::Tensor valid = torch::tensor({true, true, false, true});
  const double expected = (-std::log(Sigmoid(1.5)) - std::log(1 - Sigmoid(-0.5)) - std::log(Sigmoid(0.3))) / 3;
  EXPECT_NEAR(PointwiseLoss(logits, targets, valid).item<double>(), expected, 1e-6);
}

// Three positive rows with items 4, 7, 4 (rows 0 and 2 share their item).
struct Batch3 {
  torch::Tensor positives = torch::tensor({4, 7, 4}, torch::kInt64);
  torch::Tensor in_batch = torch::tensor({{0.9, 0.2, 0.8}, {0.1, 0.7, 0.3}, {0.6, -0.2, 0.5}});  // [user, item row]
  torch::Tensor sampled = torch::tensor({{0.9, 0.4, -0.1}, {0.7, 0.0, 0.2}, {0.5, 0.3, 0.1}});    // [pos, s1, s2]
  torch::Tensor drawn = torch::tensor({{2, 9}, {-1, 4}, {7, 2}}, torch::kInt64);
};

TEST(MatchCandidatesTest, SampledNegativesFollowThePositive) {
  Batch3 b;
  Candidates c = AssembleCandidates(b.sampled, b.drawn, {}, b.positives);
  EXPECT_TRUE(torch::equal(c.logits, b.sampled));
  EXPECT_TRUE(torch::equal(c.valid, torch::tensor({{true, true, true}, {true, false, true}, {true, true, true}})));
  EXPECT_TRUE(torch::equal(c.items, torch::tensor({{4, 2, 9}, {7, -1, 4}, {4, 7, 2}}, torch::kInt64)));
}

TEST(MatchCandidatesTest, InBatchNegativesAreTheOtherRowsItemsWithoutAccidentalHits) {
  Batch3 b;
  Candidates c = AssembleCandidates({}, {}, b.in_batch, b.positives);
  // Column 0: the diagonal; then every row's item, the row itself and same-item rows masked.
  torch::Tensor logits = torch::tensor({{0.9, 0.9, 0.2, 0.8}, {0.7, 0.1, 0.7, 0.3}, {0.5, 0.6, -0.2, 0.5}});
  torch::Tensor valid = torch::tensor({{true, false, true, false}, {true, true, false, true}, {true, false, true, false}});
  EXPECT_TRUE(torch::allclose(c.logits, logits));
  EXPECT_TRUE(torch::equal(c.valid, valid));
  // The list-wise loss of row 0 is over {0.9 (positive), 0.2 (item 7)}; of row 1 over {0.7, 0.1, 0.3}.
  const double r0 = -std::log(std::exp(0.9) / (std::exp(0.9) + std::exp(0.2)));
  const double r1 = -std::log(std::exp(0.7) / (std::exp(0.7) + std::exp(0.1) + std::exp(0.3)));
  const double r2 = -std::log(std::exp(0.5) / (std::exp(0.5) + std::exp(-0.2)));
  EXPECT_NEAR(ListwiseLoss(c.logits, c.valid).item<double>(), (r0 + r1 + r2) / 3, 1e-6);
}

TEST(MatchCandidatesTest, BothSourcesConcatenate) {
  Batch3 b;
  Candidates c = AssembleCandidates(b.sampled, b.drawn, b.in_batch, b.positives);
  ASSERT_EQ(c.logits.sizes(), (std::vector<int64_t>{3, 6}));
  EXPECT_TRUE(torch::equal(c.logits.narrow(1, 0, 3), b.sampled));
  EXPECT_TRUE(torch::equal(c.logits.narrow(1, 3, 3), b.in_batch));
  EXPECT_TRUE(torch::equal(c.items.narrow(1, 3, 3), torch::tensor({{4, 7, 4}, {4, 7, 4}, {4, 7, 4}}, torch::kInt64)));
}

TEST(MatchLogQTest, ExpectedCountsOfBothSources) {
  torch::Tensor share = torch::tensor({0.5, 0.25, 0.25}, torch::kFloat64);  // in-batch: positives' shares
  torch::Tensor prob = torch::tensor({0.2, 0.3, 0.5}, torch::kFloat64);     // sampler
  torch::Tensor items = torch::tensor({{0, 2}, {-1, 1}}, torch::kInt64);
  torch::Tensor got = LogExpectedCount(items, share, 7, prob, 4);
  EXPECT_NEAR(got[0][0].item<double>(), std::log(7 * 0.5 + 4 * 0.2), 1e-5);
  EXPECT_NEAR(got[0][1].item<double>(), std::log(7 * 0.25 + 4 * 0.5), 1e-5);
  EXPECT_EQ(got[1][0].item<double>(), 0);  // no item
  EXPECT_NEAR(got[1][1].item<double>(), std::log(7 * 0.25 + 4 * 0.3), 1e-5);
  // One source alone.
  EXPECT_NEAR(LogExpectedCount(items, share, 7, {}, 0)[0][1].item<double>(), std::log(7 * 0.25), 1e-5);
  EXPECT_NEAR(LogExpectedCount(items, {}, 0, prob, 4)[0][1].item<double>(), std::log(4 * 0.5), 1e-5);
}

// In-batch list-wise loss with the sampling-bias correction: every score s(u_b, item_j) minus
// log((P - 1) * q_j), q the items' shares of the positives (Yi et al. 2019).
TEST(MatchLogQTest, InBatchListwiseWithCorrection) {
  Batch3 b;
  torch::Tensor share = torch::zeros({10}, torch::kFloat64);
  share[4] = 0.6;
  share[7] = 0.1;
  Candidates c = AssembleCandidates({}, {}, b.in_batch, b.positives);
  torch::Tensor corrected = c.logits - LogExpectedCount(c.items, share, 2, {}, 0);
  const double l4 = std::log(2 * 0.6), l7 = std::log(2 * 0.1);
  const double r0 = -std::log(std::exp(0.9 - l4) / (std::exp(0.9 - l4) + std::exp(0.2 - l7)));
  const double r1 = -std::log(std::exp(0.7 - l7) / (std::exp(0.7 - l7) + std::exp(0.1 - l4) + std::exp(0.3 - l4)));
  const double r2 = -std::log(std::exp(0.5 - l4) / (std::exp(0.5 - l4) + std::exp(-0.2 - l7)));
  EXPECT_NEAR(ListwiseLoss(corrected, c.valid).item<double>(), (r0 + r1 + r2) / 3, 1e-5);
  // Uncorrected differs: the popular item 4 is no longer penalised.
  EXPECT_GT(std::abs(ListwiseLoss(c.logits, c.valid).item<double>() - (r0 + r1 + r2) / 3), 1e-3);
}

}  // namespace
}  // namespace shardrec::train
