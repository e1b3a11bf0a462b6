#pragma once
// Counters of one parameter-server shard (ShardStore::Stats, PsClient::Stats). Plain data.
#include <cstdint>

namespace shardrec::ps {

struct ShardStats {
  int64_t rows = 0;              // rows stored (in memory or on disk), exact
  int64_t rows_cached = 0;       // rows in memory now
  int64_t rows_on_disk = 0;      // RocksDB's estimate
  int64_t bytes_cached = 0;
  int64_t rocksdb_bytes = 0;     // live SST + memtable bytes
  int64_t cache_hits = 0, cache_misses = 0;  // rows found in memory / read from RocksDB or born
  int64_t rows_pulled = 0, rows_pushed = 0;
  int64_t pulls = 0, pushes = 0;             // calls
  int64_t evictions = 0, writebacks = 0;     // rows evicted / evicted rows written back
  int64_t flushes = 0;                       // completed Flush() calls (incl. automatic ones)
  int64_t log_bytes = 0;                     // current push-log size
};

}  // namespace shardrec::ps
