#pragma once
// Helpers of the PS service tests: tables, shard servers in this process, id streams.
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "ps/ps_client.h"
#include "ps/ps_test_util.h"  // Vocab, SameBits
#include "ps/shard_server.h"
#include "ps/table_spec.h"

namespace shardrec::ps::testing {

// Three tables with different dims and optimizers; N(0, 0.1) rows so values are not all alike.
inline std::vector<TableSpec> ServiceTables() {
  std::vector<TableSpec> t(3);
  t[0].name = "user";
  t[0].dim = 8;
  t[0].optimizer.kind = OptimizerSpec::Kind::kAdagrad;
  t[0].optimizer.lr = 0.1f;
  t[1].name = "item";
  t[1].dim = 3;
  t[1].optimizer.kind = OptimizerSpec::Kind::kAdam;
  t[1].optimizer.lr = 0.01f;
  t[2].name = "ctx";
  t[2].dim = 5;
  t[2].optimizer.kind = OptimizerSpec::Kind::kFtrl;
  t[2].optimizer.lr = 0.05f;
  t[2].optimizer.l1 = 0.001f;
  for (auto& s : t) s.init.std = 0.1f;
  return t;
}

// `n` distinct ids spread over the int64 range (negative ones too).
inline std::vector<int64_t> ServiceVocab(int64_t n, uint64_t seed) { return Vocab(n, seed); }

// Up to `max_n` distinct ids drawn from `vocab`.
inline std::vector<int64_t> DrawIds(std::mt19937_64& rng, const std::vector<int64_t>& vocab, int max_n) {
  const int n = 1 + static_cast<int>(rng() % max_n);
  std::unordered_set<int64_t> used;
  std::vector<int64_t> ids;
  for (int k = 0; k < n; ++k) {
    const int64_t id = vocab[rng() % vocab.size()];
    if (used.insert(id).second) ids.push_back(id);
  }
  return ids;
}

inline std::vector<float> RandomGrads(std::mt19937_64& rng, size_t n) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> g(n);
  for (float& x : g) x = normal(rng);
  return g;
}

// Servers of shards 0..n-1 on free loopback ports; dirs[i] (when given) holds shard i.
inline std::vector<std::unique_ptr<ShardServer>> StartServers(int n, const std::vector<TableSpec>& tables,
                                                              const std::vector<std::string>& dirs = {},
                                                              const std::string& token = "") {
  std::vector<std::unique_ptr<ShardServer>> servers;
  for (int s = 0; s < n; ++s) {
    ShardStoreOptions so;
    if (!dirs.empty()) so.dir = dirs[s];
    so.cache_bytes = int64_t{64} << 20;
    ShardServerOptions o;
    o.shard_id = s;
    o.num_shards = n;
    o.token = token;
    servers.push_back(std::make_unique<ShardServer>(tables, so, o));
  }
  return servers;
}

inline std::vector<std::string> Addresses(const std::vector<std::unique_ptr<ShardServer>>& servers) {
  std::vector<std::string> a;
  for (const auto& s : servers) a.push_back(s->address());
  return a;
}

// Weights of `ids` of `table`, read-only (nothing is created).
inline std::vector<float> ReadRows(PsClient& ps, int table, const std::vector<int64_t>& ids) {
  std::vector<float> out(ids.size() * ps.tables()[table].dim);
  ps.Pull(table, ids.data(), static_cast<int64_t>(ids.size()), out.data(), /*read_only=*/true);
  return out;
}


}  // namespace shardrec::ps::testing
