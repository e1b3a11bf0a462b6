// The negative sampler: draws follow count^power (chi-square goodness of fit), exclusions are
// never drawn, a row whose whole mass is excluded gets no negative (-1), and a seed fixes the
// draws.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/error.h"
#include "train/negative_sampler.h"

namespace shardrec::train {
namespace {

// Pearson's chi-square statistic of `observed` counts against probabilities `expected_p` (cells
// with zero probability must be empty: any draw there fails the test by itself).
double ChiSquare(const std::vector<int64_t>& observed, const std::vector<double>& expected_p, int64_t n, int* df) {
  double chi = 0;
  *df = -1;
  for (size_t i = 0; i < observed.size(); ++i) {
    if (expected_p[i] == 0) {
      EXPECT_EQ(observed[i], 0) << "drew item " << i << " of probability 0";
      continue;
    }
    const double e = expected_p[i] * static_cast<double>(n);
    chi += (observed[i] - e) * (observed[i] - e) / e;
    ++*df;
  }
  return chi;
}

// A chi-square variable with df degrees of freedom exceeds df + 6 sqrt(2 df) with a probability
// well under 1e-6 (the draws are seeded, so the test is deterministic anyway).
void ExpectFits(const std::vector<int64_t>& observed, const std::vector<double>& p, int64_t n) {
  int df = 0;
  const double chi = ChiSquare(observed, p, n, &df);
  EXPECT_LT(chi, df + 6 * std::sqrt(2.0 * df)) << "chi-square " << chi << " with " << df << " degrees of freedom";
}

const std::vector<int64_t> kCounts = {0, 1, 2, 5, 10, 40, 100, 7, 3, 1000, 0, 64};

TEST(NegativeSamplerTest, DrawsFollowCountToThePower) {
  for (double power : {0.75, 1.0, 0.5}) {
    NegativeSampler sampler(kCounts, power, 11);
    std::vector<double> p(kCounts.size());
    double total = 0;
    for (size_t i = 0; i < kCounts.size(); ++i) total += p[i] = std::pow(static_cast<double>(kCounts[i]), power);
    for (size_t i = 0; i < kCounts.size(); ++i) {
      p[i] /= total;
      EXPECT_NEAR(sampler.probability(static_cast<int64_t>(i)), p[i], 1e-12);
    }
    const int64_t n = 400000;
    std::vector<int64_t> observed(kCounts.size(), 0);
    for (int64_t d = 0; d < n; ++d) ++observed[sampler.Draw()];
    ExpectFits(observed, p, n);
    // The chi-square check notices a wrong power.
    std::vector<double> wrong(kCounts.size());
    double wrong_total = 0;
    for (size_t i = 0; i < kCounts.size(); ++i) wrong_total += wrong[i] = std::pow(static_cast<double>(kCounts[i]), power + 0.1);
    for (double& w : wrong) w /= wrong_total;
    int df = 0;
    EXPECT_GT(ChiSquare(observed, wrong, n, &df), df + 6 * std::sqrt(2.0 * df));
  }
}

TEST(NegativeSamplerTest, PowerZeroIsUniformOverTheWholeCatalogue) {
  NegativeSampler sampler(kCounts, 0.0, 5);
  const int64_t n = 240000;
  std::vector<int64_t> observed(kCounts.size(), 0);
  for (int64_t d = 0; d < n; ++d) ++observed[sampler.Draw()];
  ExpectFits(observed, std::vector<double>(kCounts.size(), 1.0 / kCounts.size()), n);  // zero counts included
}

TEST(NegativeSamplerTest, ExclusionsAreNeverDrawnAndTheRestKeepsItsShape) {
  NegativeSampler sampler(kCounts, 0.75, 3);
  // Row 0 excludes the most popular item; row 1 excludes two; row 2 nothing.
  const std::vector<int64_t> exclude = {9, 5, 6};
  const std::vector<int64_t> offsets = {0, 1, 3, 3};
  const int k = 20000;
  std::vector<int64_t> out(3 * k);
  sampler.DrawExcluding(3, k, exclude.data(), offsets.data(), out.data());
  std::vector<int64_t> row0(kCounts.size(), 0);
  for (int j = 0; j < k; ++j) {
    ASSERT_NE(out[j], 9);
    ASSERT_GE(out[j], 0);
    ++row0[out[j]];
    ASSERT_NE(out[k + j], 5);
    ASSERT_NE(out[k + j], 6);
  }
  // Row 0: the remaining items in proportion to count^0.75.
  std::vector<double> p(kCounts.size());
  double total = 0;
  for (size_t i = 0; i < kCounts.size(); ++i) total += p[i] = i == 9 ? 0 : std::pow(static_cast<double>(kCounts[i]), 0.75);
  for (double& x : p) x /= total;
  ExpectFits(row0, p, k);
  int drew_popular = 0;
  for (int j = 0; j < k; ++j) drew_popular += out[2 * k + j] == 9;
  EXPECT_GT(drew_popular, k / 2);  // row 2 is unrestricted: item 9 holds ~67% of the mass
}

TEST(NegativeSamplerTest, ARowWithEveryItemExcludedGetsNoNegative) {
  NegativeSampler sampler({0, 5, 0}, 0.75, 1);  // only item 1 can be drawn
  const std::vector<int64_t> exclude = {1};
  const std::vector<int64_t> offsets = {0, 1, 1};
  std::vector<int64_t> out(2 * 3);
  sampler.DrawExcluding(2, 3, exclude.data(), offsets.data(), out.data());
  EXPECT_EQ(out, (std::vector<int64_t>{-1, -1, -1, 1, 1, 1}));
  EXPECT_THROW(NegativeSampler({0, 0}, 0.75, 1), UserError);
}

TEST(NegativeSamplerTest, ASeedFixesTheDraws) {
  NegativeSampler a(kCounts, 0.75, 99), b(kCounts, 0.75, 99), c(kCounts, 0.75, 100);
  std::vector<int64_t> da, db, dc;
  for (int i = 0; i < 64; ++i) {
    da.push_back(a.Draw());
    db.push_back(b.Draw());
    dc.push_back(c.Draw());
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
}

}  // namespace
}  // namespace shardrec::train
