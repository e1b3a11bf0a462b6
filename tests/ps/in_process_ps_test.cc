// The in-process PS: storing vs read-only pulls, row creation on push, thread safety, and a
// throughput smoke run.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "ps/ps_client.h"
#include "ps/row_initializer.h"

namespace shardrec::ps {
namespace {

std::vector<int64_t> DistinctIds(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> ids(n);
  for (auto& id : ids) id = static_cast<int64_t>(rng() >> 1);  // 63-bit: distinct w.h.p.
  return ids;
}

TableSpec SgdTable(const char* name, int dim, float lr = 0.1f) {
  TableSpec t;
  t.name = name;
  t.dim = dim;
  t.optimizer.kind = OptimizerSpec::Kind::kSgd;
  t.optimizer.lr = lr;
  return t;
}

TEST(InProcessPs, ReadOnlyPullStoresNothingAndAgreesWithStoringPull) {
  auto ps = MakeInProcessPs({SgdTable("a", 8), SgdTable("b", 3)}, InProcessOptions{4});
  const auto ids = DistinctIds(500, 1);
  std::vector<float> ro(500 * 8), stored(500 * 8), again(500 * 8);
  ps->Pull(0, ids.data(), 500, ro.data(), /*read_only=*/true);
  EXPECT_EQ(ps->num_rows(), 0);
  ps->Pull(0, ids.data(), 500, stored.data());
  EXPECT_EQ(ps->num_rows(), 500);
  EXPECT_EQ(0, std::memcmp(ro.data(), stored.data(), ro.size() * sizeof(float)));
  ps->Pull(0, ids.data(), 500, again.data());  // existing rows: not created twice
  EXPECT_EQ(ps->num_rows(), 500);
  EXPECT_EQ(0, std::memcmp(stored.data(), again.data(), ro.size() * sizeof(float)));

  // Same ids, other table: separate rows.
  std::vector<float> b(500 * 3);
  ps->Pull(1, ids.data(), 500, b.data());
  EXPECT_EQ(ps->num_rows(), 1000);

  // After a push, a read-only pull returns the stored (trained) row, not the initial value.
  std::vector<float> grad(8, 1.f);
  ps->Push(0, ids.data(), 1, grad.data());
  std::vector<float> row(8);
  ps->Pull(0, ids.data(), 1, row.data(), /*read_only=*/true);
  for (int j = 0; j < 8; ++j) EXPECT_FLOAT_EQ(row[j], stored[j] - 0.1f);
}

TEST(InProcessPs, PushCreatesMissingRowsFromTheInitializer) {
  TableSpec t = SgdTable("a", 4, 0.5f);
  auto ps = MakeInProcessPs({t}, InProcessOptions{3});
  const auto ids = DistinctIds(10, 2);
  std::vector<float> grads(10 * 4);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = 0.01f * static_cast<float>(i);
  ps->Push(0, ids.data(), 10, grads.data());
  EXPECT_EQ(ps->num_rows(), 10);
  RowInitializer init(t.init, 0);
  std::vector<float> rows(10 * 4);
  ps->Pull(0, ids.data(), 10, rows.data());
  for (int i = 0; i < 10; ++i) {
    float w0[4];
    init.Fill(ids[i], w0, 4);
    for (int j = 0; j < 4; ++j) EXPECT_FLOAT_EQ(rows[i * 4 + j], w0[j] + -0.5f * grads[i * 4 + j]);
  }
}

TEST(InProcessPs, AdamStepCountIsPerRow) {
  // Row A pushed twice, row B once with the same gradient as A's second push: B's update must
  // be A's first update (bias correction of step 1), not its second.
  TableSpec t;
  t.name = "adam";
  t.dim = 2;
  t.init.kind = InitSpec::Kind::kZeros;
  t.optimizer.lr = 0.1f;
  auto ps = MakeInProcessPs({t}, InProcessOptions{2});
  int64_t a = 11, b = 12;
  float g[2] = {1.f, -2.f};
  ps->Push(0, &a, 1, g);
  ps->Push(0, &a, 1, g);
  ps->Push(0, &b, 1, g);
  float ra[2], rb[2];
  ps->Pull(0, &a, 1, ra);
  ps->Pull(0, &b, 1, rb);
  // Adam's first step moves each element by lr * sign(g) (up to eps).
  EXPECT_NEAR(rb[0], -0.1f, 1e-6);
  EXPECT_NEAR(rb[1], 0.1f, 1e-6);
  EXPECT_NEAR(ra[0], -0.2f, 1e-6);  // constant gradient: each step moves by lr
  EXPECT_NEAR(ra[1], 0.2f, 1e-6);
}

TEST(InProcessPs, RejectsBadArguments) {
  EXPECT_THROW(MakeInProcessPs({SgdTable("a", 4)}, InProcessOptions{0}), std::invalid_argument);
  EXPECT_THROW(MakeInProcessPs({SgdTable("a", 0)}, InProcessOptions{1}), std::invalid_argument);
  auto ps = MakeInProcessPs({SgdTable("a", 4)}, InProcessOptions{1});
  int64_t id = 1;
  float row[4];
  EXPECT_THROW(ps->Pull(1, &id, 1, row), std::out_of_range);
  EXPECT_THROW(ps->Push(-1, &id, 1, row), std::out_of_range);
  ps->Pull(0, &id, 0, row);  // empty batch is fine
  EXPECT_EQ(ps->num_rows(), 0);
}

TEST(InProcessPs, ConcurrentPullAndPushMatchSequentialReplay) {
  // Two threads push (SGD: updates commute up to float rounding) while a third pulls, storing
  // and read-only, over overlapping ids; then the rows must equal a sequential replay.
  constexpr int kDim = 8, kBatches = 300, kBatchIds = 256, kVocab = 4000;
  std::vector<TableSpec> tables = {SgdTable("a", kDim, 0.01f), SgdTable("b", kDim, 0.01f)};
  const auto vocab = DistinctIds(kVocab, 3);

  struct Batch {
    int table;
    std::vector<int64_t> ids;
    std::vector<float> grads;
  };
  std::vector<Batch> batches(2 * kBatches);
  std::mt19937_64 rng(4);
  std::normal_distribution<float> normal;
  for (auto& b : batches) {
    b.table = static_cast<int>(rng() % 2);
    std::vector<bool> used(kVocab, false);
    while (static_cast<int>(b.ids.size()) < kBatchIds) {
      const size_t v = rng() % kVocab;
      if (!used[v]) used[v] = true, b.ids.push_back(vocab[v]);
    }
    for (int k = 0; k < kBatchIds * kDim; ++k) b.grads.push_back(normal(rng));
  }

  auto ps = MakeInProcessPs(tables, InProcessOptions{4});
  std::atomic<bool> done{false};
  std::atomic<int64_t> pulls{0};
  std::thread puller([&] {
    std::mt19937_64 r(5);
    std::vector<float> out(kBatchIds * kDim);
    std::vector<int64_t> ids(kBatchIds);
    while (!done.load()) {
      for (auto& id : ids) id = vocab[r() % kVocab];  // duplicates are fine for a pull
      ps->Pull(static_cast<int>(r() % 2), ids.data(), kBatchIds, out.data(), r() % 2 == 0);
      for (float v : out) ASSERT_TRUE(std::isfinite(v));
      ++pulls;
    }
  });
  auto push_range = [&](size_t begin) {
    for (size_t k = begin; k < batches.size(); k += 2)
      ps->Push(batches[k].table, batches[k].ids.data(), kBatchIds, batches[k].grads.data());
  };
  std::thread pusher0(push_range, 0), pusher1(push_range, 1);
  pusher0.join();
  pusher1.join();
  done = true;
  puller.join();
  EXPECT_GT(pulls.load(), 0);

  auto replay = MakeInProcessPs(tables, InProcessOptions{1});
  for (const auto& b : batches) replay->Push(b.table, b.ids.data(), kBatchIds, b.grads.data());

  for (int t = 0; t < 2; ++t) {
    std::vector<float> got(kVocab * kDim), want(kVocab * kDim);
    ps->Pull(t, vocab.data(), kVocab, got.data(), /*read_only=*/true);
    replay->Pull(t, vocab.data(), kVocab, want.data(), /*read_only=*/true);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5) << "table " << t << " at " << i;
  }
}

TEST(InProcessPs, ThroughputSmoke) {
  // One step of a 26-field model: batch 2048 x 26 = 53248 distinct ids, dim 16, Adam.
  constexpr int64_t kIds = 2048 * 26;
  constexpr int kDim = 16;
  TableSpec t;
  t.name = "emb";
  t.dim = kDim;
  auto ps = MakeInProcessPs({t}, InProcessOptions{4});
  const auto ids = DistinctIds(kIds, 6);
  std::vector<float> rows(kIds * kDim), grads(kIds * kDim, 1e-3f);
  using Clock = std::chrono::steady_clock;
  auto rate = [](Clock::time_point a, Clock::time_point b) {
    return kIds / std::chrono::duration<double>(b - a).count();
  };
  auto t0 = Clock::now();
  ps->Pull(0, ids.data(), kIds, rows.data());  // creates every row
  auto t1 = Clock::now();
  ps->Pull(0, ids.data(), kIds, rows.data());  // existing rows
  auto t2 = Clock::now();
  ps->Push(0, ids.data(), kIds, grads.data());
  auto t3 = Clock::now();
  ps->Pull(0, ids.data(), kIds, rows.data(), /*read_only=*/true);
  auto t4 = Clock::now();
  std::printf("  %lld ids x dim %d, 4 shards: pull(create) %.1f ms (%.2g rows/s), pull %.1f ms "
              "(%.2g rows/s), push(Adam) %.1f ms (%.2g rows/s), read-only pull %.1f ms\n",
              static_cast<long long>(kIds), kDim,
              std::chrono::duration<double, std::milli>(t1 - t0).count(), rate(t0, t1),
              std::chrono::duration<double, std::milli>(t2 - t1).count(), rate(t1, t2),
              std::chrono::duration<double, std::milli>(t3 - t2).count(), rate(t2, t3),
              std::chrono::duration<double, std::milli>(t4 - t3).count());
  EXPECT_EQ(ps->num_rows(), kIds);
}

}  // namespace
}  // namespace shardrec::ps
