#pragma once
// Helpers of the PS storage tests: Zipf-skewed batches, and pushing / reading them through a
// ShardStore.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <string>
#include <random>
#include <unordered_set>
#include <vector>

#include "ps/shard_store.h"
#include "test_util.h"

namespace shardrec::ps::testing {

// A fresh temporary directory (shardrec::testing::TempDir), removed with everything beside it
// that starts with its name (checkpoints, copies) when the test is done. Declare it before the
// stores that live in it.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& name) : path_(shardrec::testing::TempDir(name)) {}
  ~ScopedTempDir() {
    std::error_code ec;
    const std::filesystem::path p(path_);
    const std::string base = p.filename().string();
    for (const auto& e : std::filesystem::directory_iterator(p.parent_path(), ec)) {
      const std::string name = e.path().filename().string();
      if (name == base || name.rfind(base + "-", 0) == 0 || name.rfind(base + ".", 0) == 0)
        std::filesystem::remove_all(e.path(), ec);
    }
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::string& path() const { return path_; }
  operator const std::string&() const { return path_; }

 private:
  std::string path_;
};

// Ranks 0..n-1 drawn with P(k) ~ 1 / (k + 1)^s.
class Zipf {
 public:
  Zipf(int64_t n, double s) : cdf_(n) {
    double sum = 0;
    for (int64_t k = 0; k < n; ++k) cdf_[k] = sum += 1.0 / std::pow(static_cast<double>(k + 1), s);
    for (double& c : cdf_) c /= sum;
  }
  template <typename Rng>
  int64_t operator()(Rng& rng) {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return std::min<int64_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin(),
                             static_cast<int64_t>(cdf_.size()) - 1);
  }

 private:
  std::vector<double> cdf_;
};

// The vocabulary: rank k <-> an arbitrary 64-bit id (negative ones too).
inline std::vector<int64_t> Vocab(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::unordered_set<int64_t> seen;
  std::vector<int64_t> ids;
  while (static_cast<int64_t>(ids.size()) < n) {
    const int64_t id = static_cast<int64_t>(rng());
    if (seen.insert(id).second) ids.push_back(id);
  }
  return ids;
}

struct Batch {
  int table = 0;
  std::vector<int64_t> ids;  // distinct
  std::vector<float> grads;  // ids.size() * dim
};

// Batch `index` of a deterministic stream: up to `max_ids` distinct Zipf-drawn ids of a table.
inline Batch MakeBatch(uint64_t index, const std::vector<int>& dims, const std::vector<int64_t>& vocab,
                       Zipf& zipf, int max_ids) {
  std::mt19937_64 rng(1000003 * index + 17);
  Batch b;
  b.table = static_cast<int>(rng() % dims.size());
  std::unordered_set<int64_t> used;
  for (int k = 0; k < max_ids; ++k) {
    const int64_t id = vocab[zipf(rng)];
    if (used.insert(id).second) b.ids.push_back(id);
  }
  std::normal_distribution<float> normal(0.f, 1.f);
  b.grads.resize(b.ids.size() * dims[b.table]);
  for (float& g : b.grads) g = normal(rng);
  return b;
}

inline std::vector<int64_t> Iota(int64_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

inline void PushBatch(ShardStore& s, const Batch& b) {
  const auto pos = Iota(static_cast<int64_t>(b.ids.size()));
  s.Push(b.table, b.ids.data(), pos.data(), static_cast<int64_t>(b.ids.size()), b.grads.data());
}

// Weights of every vocabulary id of `table` (read-only: nothing is created).
inline std::vector<float> ReadAll(ShardStore& s, int table, int dim, const std::vector<int64_t>& vocab) {
  std::vector<float> out(vocab.size() * dim);
  const auto pos = Iota(static_cast<int64_t>(vocab.size()));
  s.Pull(table, vocab.data(), pos.data(), static_cast<int64_t>(vocab.size()), out.data(), /*read_only=*/true);
  return out;
}

inline bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace shardrec::ps::testing
