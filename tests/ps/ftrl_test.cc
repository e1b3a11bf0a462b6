// FTRL-Proximal rows against an independent scalar implementation of McMahan et al. 2013
// (Algorithm 1, per coordinate, with TensorFlow's lr_power and 2 * l2), in double, and against
// closed forms; in memory-only and RocksDB-backed PS.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ps/ps_client.h"
#include "ps/row_initializer.h"
#include "ps_test_util.h"

namespace shardrec::ps {
namespace {

struct FtrlCoordinate {
  double z = 0, n = 0, w = 0;
  // One step with gradient g (the paper's g_t), then w_{t+1}.
  void Step(double g, double alpha, double beta, double l1, double l2, double lr_power) {
    const double sigma = (std::pow(n + g * g, -lr_power) - std::pow(n, -lr_power)) / alpha;
    z += g - sigma * w;
    n += g * g;
    if (std::abs(z) <= l1) {
      w = 0;
    } else {
      const double sgn = z > 0 ? 1 : -1;
      w = -(z - sgn * l1) / ((beta + std::pow(n, -lr_power)) / alpha + 2 * l2);
    }
  }
};

OptimizerSpec Ftrl(float alpha, float beta, float l1, float l2, float lr_power) {
  OptimizerSpec o;
  o.kind = OptimizerSpec::Kind::kFtrl;
  o.lr = alpha;
  o.ftrl_beta = beta;
  o.l1 = l1;
  o.l2 = l2;
  o.lr_power = lr_power;
  return o;
}

void RunFtrl(const OptimizerSpec& opt, bool backed) {
  const testing::ScopedTempDir dir("ftrl");
  constexpr int kDim = 6, kVocab = 40, kSteps = 30;
  TableSpec t;
  t.name = "ftrl";
  t.dim = kDim;
  t.init.std = 0.05f;
  t.optimizer = opt;
  InProcessOptions o;
  o.num_shards = 3;
  if (backed) o.data_dir = dir.path();
  o.cache_bytes = 3 * 2000;  // a few rows per shard: rows go through RocksDB
  auto ps = MakeInProcessPs({t}, o);

  std::vector<int64_t> vocab(kVocab);
  std::mt19937_64 rng(11);
  for (auto& id : vocab) id = static_cast<int64_t>(rng());
  std::vector<FtrlCoordinate> ref(kVocab * kDim);
  RowInitializer init(t.init, 0);
  for (int v = 0; v < kVocab; ++v) {
    float w0[kDim];
    init.Fill(vocab[v], w0, kDim);
    for (int j = 0; j < kDim; ++j) ref[v * kDim + j].w = w0[j];
  }
  std::normal_distribution<float> normal(0.f, 1.f);
  int zeros = 0;
  for (int step = 0; step < kSteps; ++step) {
    std::vector<int64_t> ids;
    std::vector<float> grads;
    for (int v = 0; v < kVocab; ++v) {
      if (rng() % 3 == 0) continue;
      ids.push_back(vocab[v]);
      for (int j = 0; j < kDim; ++j) {
        const float g = normal(rng) * 0.3f;
        grads.push_back(g);
        ref[v * kDim + j].Step(g, opt.lr, opt.ftrl_beta, opt.l1, opt.l2, opt.lr_power);
      }
    }
    ps->Push(0, ids.data(), static_cast<int64_t>(ids.size()), grads.data());
  }
  std::vector<float> rows(kVocab * kDim);
  ps->Pull(0, vocab.data(), kVocab, rows.data(), /*read_only=*/true);
  double max_diff = 0;
  for (int i = 0; i < kVocab * kDim; ++i) {
    EXPECT_NEAR(rows[i], ref[i].w, 1e-6) << "row " << i / kDim << " element " << i % kDim;
    max_diff = std::max(max_diff, std::abs(rows[i] - ref[i].w));
    zeros += rows[i] == 0.f;
  }
  std::printf("  max |ps - reference| = %.3g, %d of %d weights exactly 0\n", max_diff, zeros, kVocab * kDim);
  if (opt.l1 > 0) EXPECT_GT(zeros, 0) << "l1 should make some weights exactly 0";
}

TEST(Ftrl, MatchesScalarReference) { RunFtrl(Ftrl(0.1f, 1.f, 0.f, 0.f, -0.5f), false); }
TEST(Ftrl, L1L2MatchScalarReference) { RunFtrl(Ftrl(0.05f, 0.5f, 0.3f, 0.2f, -0.5f), false); }
TEST(Ftrl, OtherLrPowerMatchesScalarReference) { RunFtrl(Ftrl(0.1f, 0.f, 0.05f, 0.01f, -0.3f), false); }
TEST(Ftrl, RocksDbBackedMatchesScalarReference) {
  RunFtrl(Ftrl(0.05f, 0.5f, 0.3f, 0.2f, -0.5f), true);
}

TEST(Ftrl, FirstStepClosedForm) {
  // From z = n = 0 and initial weight w0: sigma = |g| / alpha, z = g - |g| w0 / alpha, n = g^2,
  // w = -(z - sign(z) l1) / ((beta + |g|) / alpha + 2 l2), or 0 when |z| <= l1.
  const float alpha = 0.2f, beta = 0.7f, l1 = 0.1f, l2 = 0.05f;
  TableSpec t;
  t.name = "f";
  t.dim = 3;
  t.init.kind = InitSpec::Kind::kUniform;
  t.init.low = -0.5f;
  t.init.high = 0.5f;
  t.optimizer = Ftrl(alpha, beta, l1, l2, -0.5f);
  auto ps = MakeInProcessPs({t}, InProcessOptions{1});
  int64_t id = 42;
  float w0[3], g[3] = {0.8f, -0.05f, -2.f}, w1[3];
  ps->Pull(0, &id, 1, w0);
  ps->Push(0, &id, 1, g);
  ps->Pull(0, &id, 1, w1);
  for (int j = 0; j < 3; ++j) {
    const double gj = g[j], z = gj - std::abs(gj) * w0[j] / alpha;
    const double want = std::abs(z) <= l1 ? 0.0
                                          : -(z - (z > 0 ? 1 : -1) * l1) / ((beta + std::abs(gj)) / alpha + 2 * l2);
    EXPECT_NEAR(w1[j], want, 1e-6) << "element " << j;
  }
}

}  // namespace
}  // namespace shardrec::ps
