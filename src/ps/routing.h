#pragma once
// Which shard holds a row: the one routing function of every PsClient (in-process shards, remote
// shard servers). Ids of table t go to shard Mix64(HashCombine(t, id)) % num_shards, so a shard's
// data folder written by the in-process PS can be served by `shardrec ps` and vice versa, as
// long as num_shards is the same.
#include <cstdint>

#include "common/hash.h"

namespace shardrec::ps {

inline uint32_t ShardOf(int table, int64_t id, uint32_t num_shards) {
  return static_cast<uint32_t>(Mix64(HashCombine(static_cast<uint64_t>(table), static_cast<uint64_t>(id))) %
                               num_shards);
}

}  // namespace shardrec::ps
