#pragma once
// Which shard holds a row: the one routing function of every PsClient (in-process shards, remote
// shard servers). Ids of table t go to shard Mix64(HashCombine(t, id)) % num_shards, so a shard's
// data folder written by the in-process PS can be served by `shardrec ps` and vice versa, as
// long as num_shards is the same.
#include <cstdint>
#include <vector>

#include "common/hash.h"

namespace shardrec::ps {

inline uint32_t ShardOf(int table, int64_t id, uint32_t num_shards) {
  return static_cast<uint32_t>(Mix64(HashCombine(static_cast<uint64_t>(table), static_cast<uint64_t>(id))) %
                               num_shards);
}

// The indices of a call's ids grouped by shard: positions[begin[s], begin[s + 1]) go to shard s,
// in their original order (a stable counting sort). Reused per thread: no allocation once warm.
struct ShardRoute {
  std::vector<uint32_t> shard_of;  // shard of ids[i]
  std::vector<int64_t> begin;
  std::vector<int64_t> positions;  // indices into ids
};

// Fills *r for ids[0, n) of `table` over `num_shards` shards.
inline void RouteByShard(int table, const int64_t* ids, int64_t n, uint32_t num_shards, ShardRoute* r) {
  r->begin.assign(num_shards + 1, 0);
  r->positions.resize(n);
  if (num_shards == 1) {
    for (int64_t i = 0; i < n; ++i) r->positions[i] = i;
    r->begin[1] = n;
    return;
  }
  r->shard_of.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t s = ShardOf(table, ids[i], num_shards);
    r->shard_of[i] = s;
    ++r->begin[s + 1];
  }
  for (uint32_t s = 0; s < num_shards; ++s) r->begin[s + 1] += r->begin[s];
  // Fill with a moving cursor per shard, then shift `begin` back into place.
  for (int64_t i = 0; i < n; ++i) r->positions[r->begin[r->shard_of[i]]++] = i;
  for (uint32_t s = num_shards; s > 0; --s) r->begin[s] = r->begin[s - 1];
  r->begin[0] = 0;
}

}  // namespace shardrec::ps
