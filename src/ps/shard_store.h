#pragma once
// One shard's rows: an in-memory row cache under a byte budget in front of RocksDB (the capacity
// and durability tier), plus a push log so that every acknowledged push survives a crash of the
// process. Rows hold weights followed by optimizer state; they are born on first touch from the
// table's initializer (a pure function of table, id and seed), so ids are unbounded.
//
// Thread-safe: one lock per shard; a Pull or Push serves a whole batch slice under it.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ps/table_spec.h"

namespace shardrec::ps {

struct TableRules;

struct ShardStoreOptions {
  // RocksDB directory of this shard. Empty: rows live only in memory (no budget, no log).
  std::string dir;
  // Bytes of rows kept in memory (weights + optimizer state + bookkeeping). Cold rows are
  // evicted (written back in batches when dirty) and read again with MultiGet on a miss.
  int64_t cache_bytes = int64_t{1} << 30;
  // Each push is appended to the shard's log before Push returns: with write() only (default) an
  // acknowledged push survives kill -9 of the process; with sync_pushes it is fsync'ed too and
  // survives a machine crash, at a cost per push.
  bool sync_pushes = false;
  // When the log reaches this size, dirty rows are flushed to RocksDB and a new log starts.
  int64_t flush_log_bytes = int64_t{256} << 20;
};

struct ShardStats {
  int64_t rows_cached = 0;       // rows in memory now
  int64_t rows_on_disk = 0;      // RocksDB's estimate
  int64_t bytes_cached = 0;
  int64_t rocksdb_bytes = 0;     // live SST + memtable bytes
  int64_t cache_hits = 0, cache_misses = 0;  // rows found in memory / read from RocksDB or born
  int64_t rows_pulled = 0, rows_pushed = 0;
  int64_t pulls = 0, pushes = 0;             // calls
  int64_t evictions = 0, writebacks = 0;     // rows evicted / evicted rows written back
  int64_t log_bytes = 0;                     // current push-log size
};

class ShardStore {
 public:
  // Opens (or creates) the shard in options.dir and replays its push log. `tables` describe the
  // tables in order; a directory written for different tables (name, dim, optimizer) is refused
  // with a message saying what differs.
  ShardStore(const std::vector<TableSpec>& tables, ShardStoreOptions options);
  ~ShardStore();  // flushes
  ShardStore(const ShardStore&) = delete;
  ShardStore& operator=(const ShardStore&) = delete;

  // For each k < count, i = positions[k]: writes the weights of ids[i] to out[i * dim]. Creates
  // and stores missing rows unless `read_only` (then the initial value is returned, nothing is
  // stored). Returns the number of rows created.
  int64_t Pull(int table, const int64_t* ids, const int64_t* positions, int64_t count, float* out, bool read_only);

  // For each k < count, i = positions[k]: applies the table's optimizer to the row of ids[i] with
  // grads[i * dim] (creating the row first when missing). Durable (see ShardStoreOptions) when it
  // returns. Returns the number of rows created.
  int64_t Push(int table, const int64_t* ids, const int64_t* positions, int64_t count, const float* grads);

  // Writes every dirty row to RocksDB, makes it durable, and truncates the push log.
  void Flush();

  // A consistent copy of the shard (after Flush) in `checkpoint_dir`, via RocksDB checkpoints.
  void Checkpoint(const std::string& checkpoint_dir);

  ShardStats Stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Replaces the shard directory `shard_dir` with the checkpoint in `checkpoint_dir`.
void RestoreShardCheckpoint(const std::string& checkpoint_dir, const std::string& shard_dir);

}  // namespace shardrec::ps
