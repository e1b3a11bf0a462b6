#include "train/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <vector>

namespace shardrec::train {
namespace {

// O(n^2) reference: over all (positive, negative) pairs, 1 if the positive scores higher,
// 1/2 on a tie.
double BruteForceAuc(const std::vector<float>& s, const std::vector<float>& y) {
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!(y[i] > 0.5f)) continue;
    for (size_t j = 0; j < s.size(); ++j) {
      if (y[j] > 0.5f) continue;
      pairs += 1;
      wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
    }
  }
  return wins / pairs;
}

TEST(Auc, HandCaseWithTies) {
  //            i:   0     1     2     3     4     5
  std::vector<float> s = {0.1f, 0.4f, 0.4f, 0.8f, 0.4f, 0.1f};
  std::vector<float> y = {0, 1, 0, 1, 0, 1};
  // Positives: 0.4 (i1), 0.8 (i3), 0.1 (i5). Negatives: 0.1 (i0), 0.4 (i2), 0.4 (i4). 9 pairs:
  //   pos 0.4 vs neg 0.1: win 1;  vs 0.4, 0.4: ties 1/2 + 1/2      -> 2
  //   pos 0.8 vs 0.1, 0.4, 0.4: wins                               -> 3
  //   pos 0.1 vs neg 0.1: tie 1/2;  vs 0.4, 0.4: losses            -> 0.5
  // AUC = (2 + 3 + 0.5) / 9 = 5.5 / 9.
  EXPECT_NEAR(Auc(s.data(), y.data(), 6), 5.5 / 9, 1e-12);
}

TEST(Auc, ExtremesAndDegenerateInputs) {
  std::vector<float> s = {0.1f, 0.2f, 0.3f, 0.4f};
  std::vector<float> up = {0, 0, 1, 1}, down = {1, 1, 0, 0}, one_class = {1, 1, 1, 1};
  EXPECT_DOUBLE_EQ(Auc(s.data(), up.data(), 4), 1.0);
  EXPECT_DOUBLE_EQ(Auc(s.data(), down.data(), 4), 0.0);
  EXPECT_TRUE(std::isnan(Auc(s.data(), one_class.data(), 4)));
  EXPECT_TRUE(std::isnan(Auc(s.data(), up.data(), 0)));
  std::vector<float> same(4, 0.5f);
  EXPECT_DOUBLE_EQ(Auc(same.data(), up.data(), 4), 0.5);  // all tied
  s[1] = NAN;
  EXPECT_TRUE(std::isnan(Auc(s.data(), up.data(), 4)));
}

TEST(Auc, MatchesBruteForcePairCountWithManyTies) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 50 + 100 * trial;
    const int levels = 2 + trial;  // few distinct scores: many ties
    std::vector<float> s(n), y(n);
    for (int i = 0; i < n; ++i) {
      s[i] = static_cast<float>(rng() % levels) / levels;
      // Labels correlated with scores, soft labels around the 0.5 threshold included.
      y[i] = (rng() % 100) < 30 + 40 * s[i] ? (rng() % 2 ? 1.f : 0.75f) : (rng() % 2 ? 0.f : 0.25f);
    }
    EXPECT_NEAR(Auc(s.data(), y.data(), n), BruteForceAuc(s, y), 1e-12) << "trial " << trial;
  }
}

TEST(LogLoss, HandValue) {
  std::vector<float> p = {0.9f, 0.2f, 0.f, 1.f};
  std::vector<float> y = {1, 0, 1, 1};
  // -ln 0.9 = 0.1053605157, -ln(1 - 0.2) = 0.2231435513,
  // p = 0 clipped to 1e-7: -ln 1e-7 = 16.1180956510, p = 1 clipped to 1 - 1e-7: 1.0000000500e-7.
  const double want = (0.1053605157 + 0.2231435513 + 16.1180956510 + 1.00000005e-7) / 4;
  EXPECT_NEAR(LogLoss(p.data(), y.data(), 4), want, 1e-6);
  EXPECT_TRUE(std::isnan(LogLoss(p.data(), y.data(), 0)));
}

TEST(Gauc, HandCase) {
  // Torch-RecHub's metric.py example plus a tied group and a single-class group.
  std::vector<float> s = {0.3f, 0.2f, 0.5f, 0.9f, 0.7f, 0.31f, 0.8f, 0.1f, 0.4f, 0.6f,  //
                          0.5f, 0.5f, 0.9f, 0.1f};
  std::vector<float> y = {1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0};
  std::vector<uint64_t> g = {2, 1, 0, 2, 1, 0, 0, 2, 1, 1, 4, 4, 3, 3};
  // Group 0: 0.5(-) 0.31(-) 0.8(+)         -> AUC 2/2 = 1,   weight 3
  // Group 1: 0.2(-) 0.7(-) 0.4(-) 0.6(+)   -> AUC 2/3,       weight 4
  // Group 2: 0.3(+) 0.9(+) 0.1(-)          -> AUC 2/2 = 1,   weight 3
  // Group 4: 0.5(+) 0.5(-), a tie          -> AUC 1/2,       weight 2
  // Group 3: negatives only                -> skipped
  // Without groups 3 and 4 it is Torch-RecHub's example: (3 + 4 * 2/3 + 3) / 10 = 0.8667.
  EXPECT_NEAR(Gauc(s.data(), y.data(), g.data(), 10), (3 + 4 * 2.0 / 3 + 3) / 10, 1e-12);
  EXPECT_NEAR(Gauc(s.data(), y.data(), g.data(), 14), (3 + 4 * 2.0 / 3 + 3 + 2 * 0.5) / 12, 1e-12);
  std::vector<uint64_t> single = {3, 3};
  EXPECT_TRUE(std::isnan(Gauc(s.data() + 12, y.data() + 12, single.data(), 2)));
}

TEST(Gauc, MatchesPerGroupBruteForce) {
  std::mt19937 rng(2);
  const int n = 3000;
  std::vector<float> s(n), y(n);
  std::vector<uint64_t> g(n);
  std::map<uint64_t, std::pair<std::vector<float>, std::vector<float>>> by_group;
  for (int i = 0; i < n; ++i) {
    s[i] = static_cast<float>(rng() % 7) / 7;
    y[i] = (rng() % 3 == 0) ? 1.f : 0.f;
    g[i] = (rng() % 40) * 0x9e3779b97f4a7c15ULL;  // spread-out 64-bit group ids
    by_group[g[i]].first.push_back(s[i]);
    by_group[g[i]].second.push_back(y[i]);
  }
  double weighted = 0, weight = 0;
  for (const auto& [group, sy] : by_group) {
    const auto& [gs, gy] = sy;
    int pos = 0;
    for (float v : gy) pos += v > 0.5f;
    if (pos == 0 || pos == static_cast<int>(gy.size())) continue;
    weighted += gs.size() * BruteForceAuc(gs, gy);
    weight += gs.size();
  }
  EXPECT_NEAR(Gauc(s.data(), y.data(), g.data(), n), weighted / weight, 1e-12);
}

TEST(RegressionMetrics, HandValues) {
  const std::vector<float> p = {1.0f, 2.5f, -1.0f};
  const std::vector<float> y = {0.0f, 2.0f, 1.0f};
  // errors 1, 0.5, -2: squares 1 + 0.25 + 4, absolutes 1 + 0.5 + 2.
  EXPECT_NEAR(MeanSquaredError(p.data(), y.data(), 3), 5.25 / 3, 1e-9);
  EXPECT_NEAR(MeanAbsoluteError(p.data(), y.data(), 3), 3.5 / 3, 1e-9);
  EXPECT_TRUE(std::isnan(MeanSquaredError(p.data(), y.data(), 0)));
}

}  // namespace
}  // namespace shardrec::train
