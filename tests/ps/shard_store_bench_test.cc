// Ad-hoc throughput of the in-process PS (not run by default; numbers for reports):
//   ps_store_test --gtest_also_run_disabled_tests --gtest_filter='PsBench.*'
// Env: SHARDREC_BENCH_ROWS (out-of-core table rows, default 2,000,000), SHARDREC_BENCH_DIR.
#include <gtest/gtest.h>

#include <algorithm>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <unordered_set>
#include <vector>

#include "ps/ps_client.h"
#include "ps/row_cache.h"
#include "ps_test_util.h"
#include "test_util.h"

namespace shardrec::ps {
namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

constexpr int64_t kIds = 2048 * 26;
constexpr int kDim = 16;

TableSpec AdamTable() {
  TableSpec t;
  t.name = "emb";
  t.dim = kDim;
  return t;
}

// A fresh directory under $SHARDREC_BENCH_DIR (default: the temporary directory), removed after.
struct BenchDir {
  explicit BenchDir(const std::string& name)
      : path(std::string(std::getenv("SHARDREC_BENCH_DIR") ? std::getenv("SHARDREC_BENCH_DIR")
                                                            : std::filesystem::temp_directory_path().string()) +
             "/shardrec-bench-" + name + "-" + std::to_string(::getpid())) {
    std::filesystem::remove_all(path);
  }
  ~BenchDir() { std::filesystem::remove_all(path); }
  std::string path;
};

void Cached(const char* what, InProcessOptions o) {
  auto ps = MakeInProcessPs({AdamTable()}, o);
  std::mt19937_64 rng(6);
  std::vector<int64_t> ids(kIds);
  for (auto& id : ids) id = static_cast<int64_t>(rng() >> 1);
  std::vector<float> rows(kIds * kDim), grads(kIds * kDim, 1e-3f);
  const auto t0 = Clock::now();
  ps->Pull(0, ids.data(), kIds, rows.data());
  const auto t1 = Clock::now();
  double pull = 1e9, push = 1e9;
  for (int r = 0; r < 10; ++r) {
    const auto a = Clock::now();
    ps->Pull(0, ids.data(), kIds, rows.data());
    const auto b = Clock::now();
    ps->Push(0, ids.data(), kIds, grads.data());
    const auto c = Clock::now();
    pull = std::min(pull, Ms(a, b));
    push = std::min(push, Ms(b, c));
  }
  std::printf("  %-34s create %.1f ms | pull %.2f ms (%.3g rows/s) | push %.2f ms (%.3g rows/s)\n", what, Ms(t0, t1),
              pull, kIds / pull * 1e3, push, kIds / push * 1e3);
}

TEST(PsBench, DISABLED_CachedWorkingSet) {
  std::printf("  %lld distinct ids x dim %d, Adam, 4 shards, best of 10\n", static_cast<long long>(kIds), kDim);
  Cached("memory-only", InProcessOptions{4});
  InProcessOptions o{4};
  const BenchDir dir("cached"), sync_dir("cached-sync");
  o.data_dir = dir.path;
  Cached("RocksDB-backed, all cached", o);
  o.data_dir = sync_dir.path;
  o.sync_pushes = true;
  Cached("RocksDB-backed, all cached, sync", o);
}

TEST(PsBench, DISABLED_OutOfCoreZipf) {
  const int64_t rows = std::getenv("SHARDREC_BENCH_ROWS") ? std::atoll(std::getenv("SHARDREC_BENCH_ROWS")) : 2000000;
  const int64_t table_bytes = rows * RowCache::RowBytes(kDim + 2 * kDim + 2);
  InProcessOptions o{4};
  const BenchDir dir("out-of-core");
  o.data_dir = dir.path;
  o.cache_bytes = table_bytes / 10;
  auto ps = MakeInProcessPs({AdamTable()}, o);
  // Rank k <-> id: a random permutation, so hot ids are spread over shards and keys.
  std::vector<int64_t> id_of(rows);
  std::iota(id_of.begin(), id_of.end(), int64_t{0});
  std::mt19937_64 rng(9);
  std::shuffle(id_of.begin(), id_of.end(), rng);
  for (auto& id : id_of) id = id * 0x9E3779B97F4A7C15LL;
  std::vector<float> out(kIds * kDim), grads(kIds * kDim, 1e-3f);

  // Every row exists on disk first (pushed once).
  auto t0 = Clock::now();
  for (int64_t b = 0; b < rows; b += kIds) {
    const int64_t n = std::min(kIds, rows - b);
    ps->Push(0, id_of.data() + b, n, grads.data());
  }
  auto t1 = Clock::now();
  std::printf("  table: %lld rows x dim %d Adam (%.0f MB in cache form), budget %.0f MB; filled in %.1f s (%.3g rows/s)\n",
              static_cast<long long>(rows), kDim, table_bytes / 1e6, o.cache_bytes / 1e6, Ms(t0, t1) / 1e3,
              rows / Ms(t0, t1) * 1e3);

  for (double s : {1.05, 1.2}) {
    testing::Zipf zipf(rows, s);
    auto batch = [&](std::vector<int64_t>& ids) {
      ids.clear();
      std::unordered_set<int64_t> seen;
      for (int64_t k = 0; k < kIds; ++k) {
        const int64_t id = id_of[zipf(rng)];
        if (seen.insert(id).second) ids.push_back(id);
      }
    };
    std::vector<int64_t> ids;
    for (int w = 0; w < 10; ++w) {  // warm the cache
      batch(ids);
      ps->Pull(0, ids.data(), static_cast<int64_t>(ids.size()), out.data());
      ps->Push(0, ids.data(), static_cast<int64_t>(ids.size()), grads.data());
    }
    auto sum = [&] {
      ShardStats a;
      for (const auto& st : ps->Stats()) a.cache_hits += st.cache_hits, a.cache_misses += st.cache_misses;
      return a;
    };
    ShardStats before = sum();
    double pull_ms = 0, push_ms = 0, pull_hits = 0, pull_all = 0;
    int64_t n_rows = 0;
    for (int r = 0; r < 20; ++r) {
      batch(ids);
      const int64_t n = static_cast<int64_t>(ids.size());
      const auto a = Clock::now();
      ps->Pull(0, ids.data(), n, out.data());
      const auto b = Clock::now();
      const ShardStats mid = sum();
      pull_hits += static_cast<double>(mid.cache_hits - before.cache_hits);
      pull_all += static_cast<double>(mid.cache_hits - before.cache_hits + mid.cache_misses - before.cache_misses);
      ps->Push(0, ids.data(), n, grads.data());
      const auto c = Clock::now();
      before = sum();
      pull_ms += Ms(a, b);
      push_ms += Ms(b, c);
      n_rows += n;
    }
    std::printf("  Zipf s=%.2f: %lld distinct ids/batch: pull %.3g rows/s (hit rate %.1f%%), push %.3g rows/s "
                "(its rows were just pulled)\n",
                s, static_cast<long long>(n_rows / 20), n_rows / pull_ms * 1e3, 100 * pull_hits / pull_all,
                n_rows / push_ms * 1e3);
  }
  int64_t ev = 0, wb = 0, fl = 0;
  for (const auto& st : ps->Stats()) ev += st.evictions, wb += st.writebacks, fl += st.flushes;
  std::printf("  evictions %lld, write-backs %lld, flushes %lld\n", static_cast<long long>(ev),
              static_cast<long long>(wb), static_cast<long long>(fl));
}

}  // namespace
}  // namespace shardrec::ps
