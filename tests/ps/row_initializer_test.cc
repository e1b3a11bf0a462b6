// Row initialization: a pure function of (table index, seed, id), with the requested
// distribution.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ps/ps_client.h"
#include "ps/row_initializer.h"

namespace shardrec::ps {
namespace {

std::vector<int64_t> RandomIds(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> ids(n);
  for (auto& id : ids) id = static_cast<int64_t>(rng());
  return ids;
}

TableSpec Table(const char* name, int dim, InitSpec init) {
  TableSpec t;
  t.name = name;
  t.dim = dim;
  t.init = init;
  return t;
}

TEST(RowInitializer, SameRowsForAnyShardCountAndCallOrder) {
  InitSpec normal;  // the reference N(0, 1e-4)
  InitSpec uniform;
  uniform.kind = InitSpec::Kind::kUniform;
  std::vector<TableSpec> tables = {Table("a", 16, normal), Table("b", 5, uniform)};
  auto one = MakeInProcessPs(tables, InProcessOptions{1});
  auto seven = MakeInProcessPs(tables, InProcessOptions{7});

  const auto ids = RandomIds(1000, 1);
  for (int t = 0; t < 2; ++t) {
    const int dim = tables[t].dim;
    std::vector<float> a(ids.size() * dim), b(ids.size() * dim);
    one->Pull(t, ids.data(), ids.size(), a.data());
    // Other instance: reversed order, in two calls, part of it read-only.
    std::vector<int64_t> rev(ids.rbegin(), ids.rend());
    std::vector<float> r(ids.size() * dim);
    seven->Pull(t, rev.data(), 400, r.data(), /*read_only=*/true);
    seven->Pull(t, rev.data() + 400, rev.size() - 400, r.data() + 400 * dim);
    for (size_t i = 0; i < ids.size(); ++i)
      std::memcpy(b.data() + i * dim, r.data() + (ids.size() - 1 - i) * dim, dim * sizeof(float));
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << "table " << t;
  }
}

TEST(RowInitializer, PureFunctionOfTableSeedAndId) {
  InitSpec spec;
  RowInitializer t0(spec, 0), t0_again(spec, 0), t1(spec, 1);
  InitSpec other_seed = spec;
  other_seed.seed = spec.seed + 1;
  RowInitializer t0_seed(other_seed, 0);

  float a[8], b[8], c[8], d[8], e[8];
  t0.Fill(42, a, 8);
  t0_again.Fill(42, b, 8);
  EXPECT_EQ(0, std::memcmp(a, b, sizeof(a)));
  t0.Fill(43, c, 8);
  t1.Fill(42, d, 8);
  t0_seed.Fill(42, e, 8);
  for (int j = 0; j < 8; ++j) {
    EXPECT_NE(a[j], c[j]) << "ids 42 and 43 share element " << j;
    EXPECT_NE(a[j], d[j]) << "tables 0 and 1 share element " << j;
    EXPECT_NE(a[j], e[j]) << "seeds share element " << j;
  }
  // A row's elements differ from each other, and a longer row extends a shorter one.
  for (int j = 1; j < 8; ++j) EXPECT_NE(a[j], a[j - 1]);
  float shorter[3];
  t0.Fill(42, shorter, 3);
  EXPECT_EQ(0, std::memcmp(a, shorter, sizeof(shorter)));
}

TEST(RowInitializer, DistinctIdsGiveDistinctRows) {
  RowInitializer init(InitSpec{}, 0);
  const auto ids = RandomIds(5000, 2);
  std::vector<float> firsts;
  for (int64_t id : ids) {
    float row[2];
    init.Fill(id, row, 2);
    firsts.push_back(row[0]);
  }
  std::sort(firsts.begin(), firsts.end());
  // 5000 floats drawn from a continuous distribution: (almost) no collisions.
  EXPECT_GT(std::unique(firsts.begin(), firsts.end()) - firsts.begin(), 4990);
}

struct Stats {
  double mean, std, min, max;
};

Stats RowStats(const InitSpec& spec, int dim, int64_t rows) {
  RowInitializer init(spec, 3);
  std::vector<float> row(dim);
  double sum = 0, sum_sq = 0, lo = INFINITY, hi = -INFINITY;
  for (int64_t id = 0; id < rows; ++id) {  // consecutive ids: the hash must decorrelate them
    init.Fill(id, row.data(), dim);
    for (float v : row) {
      sum += v;
      sum_sq += static_cast<double>(v) * v;
      lo = std::min<double>(lo, v);
      hi = std::max<double>(hi, v);
    }
  }
  const double n = static_cast<double>(rows) * dim;
  const double mean = sum / n;
  return {mean, std::sqrt(sum_sq / n - mean * mean), lo, hi};
}

TEST(RowInitializer, NormalHasRequestedMeanAndStd) {
  // 20000 x 15 (odd dim: the last Box-Muller pair is half used) = 300k values; the standard error
  // of the mean is std / 548, of the std about std / 775.
  for (auto [mean, std] : {std::pair<float, float>{0.f, 1e-4f}, {0.5f, 2.f}}) {
    InitSpec spec;
    spec.mean = mean;
    spec.std = std;
    Stats s = RowStats(spec, 15, 20000);
    EXPECT_NEAR(s.mean, mean, 0.01 * std) << "N(" << mean << ", " << std << ")";
    EXPECT_NEAR(s.std, std, 0.01 * std) << "N(" << mean << ", " << std << ")";
    EXPECT_LT(s.min, mean - 4 * std);  // tails exist
    EXPECT_GT(s.max, mean + 4 * std);
  }
}

TEST(RowInitializer, UniformStaysInRange) {
  InitSpec spec;
  spec.kind = InitSpec::Kind::kUniform;
  spec.low = -0.05f;
  spec.high = 0.15f;
  Stats s = RowStats(spec, 16, 20000);
  EXPECT_GE(s.min, spec.low);
  EXPECT_LE(s.max, spec.high);
  EXPECT_NEAR(s.mean, 0.05, 0.002);
  EXPECT_NEAR(s.std, 0.2 / std::sqrt(12.0), 0.002);
  EXPECT_LT(s.min, spec.low + 1e-4);
  EXPECT_GT(s.max, spec.high - 1e-4);
}

TEST(RowInitializer, ZerosAreZero) {
  InitSpec spec;
  spec.kind = InitSpec::Kind::kZeros;
  Stats s = RowStats(spec, 8, 100);
  EXPECT_EQ(s.min, 0.0);
  EXPECT_EQ(s.max, 0.0);
}

}  // namespace
}  // namespace shardrec::ps
