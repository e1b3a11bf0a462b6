#pragma once
// One shard's rows: an in-memory row cache under a byte budget in front of RocksDB (the capacity
// and durability tier), plus a push log so that every acknowledged push survives a crash of the
// process. Rows hold weights followed by optimizer state; they are born on first touch from the
// table's initializer (a pure function of table, id and seed), so ids are unbounded.
//
// Thread-safe: one lock per shard; a Pull or Push serves a whole batch slice under it.
//
// Directory layout: db/ (RocksDB), shard.manifest (the tables), pushlog-<generation>.log.
// RocksDB key: 12 bytes big-endian [u32 table][u64 id], so a table's rows are contiguous; value:
// [u64 last_seq][f32 weights[dim], optimizer state] in host byte order, where last_seq is the
// sequence number of the last push applied to the row.
//
// Durability: a push gets the next sequence number, is appended to the current log, then
// applied in memory. Flush: rotate to a new log file; write every dirty row (with its last_seq)
// to RocksDB with its WAL disabled; db->Flush(wait) makes that durable (RocksDB installs memtable
// flushes in order, so what survives a crash is always a prefix of our write batches); then the
// older logs are deleted. Evicted dirty rows are written the same way (not durable until the next
// flush, which the logs cover). On open, every remaining log is replayed in order, each record
// applied only to rows whose last_seq is below its own: idempotent, even over a half-done flush.
// A record cut short by a crash ends the log (it was never acknowledged) and is truncated away.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ps/shard_stats.h"
#include "ps/table_spec.h"

namespace shardrec::ps {

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
  // Without the log, rows changed since the last Flush (or eviction) are lost if the process dies.
  // The embedded trainer turns it off: its pushes die with it anyway, and its durability point is
  // a checkpoint (which flushes). A PS server keeps it on: a push it acknowledged must survive.
  bool log_pushes = true;
  // When the log reaches this size, dirty rows are flushed to RocksDB and a new log starts.
  int64_t flush_log_bytes = int64_t{256} << 20;
};

// Names a remote client's push (ShardServer): `client` is a hash of its id (non-zero), and
// request numbers grow per client. Logged and persisted with the push, so that a retry of a push
// the shard already applied is recognised after a restart too.
struct PushTag {
  uint64_t client = 0;
  uint64_t request_seq = 0;
};

class ShardStore {
 public:
  // Opens (or creates) the shard in options.dir and replays its push log. `tables` describe the
  // tables in order; a directory written for different tables (name, dim, optimizer, floats per
  // row) is refused with a std::runtime_error naming the table and what differs.
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
  int64_t Push(int table, const int64_t* ids, const int64_t* positions, int64_t count, const float* grads,
               const PushTag* tag = nullptr);

  // The highest request_seq of `client` this shard has applied (0: none), surviving restarts.
  uint64_t LastRequestSeq(uint64_t client) const;

  // Writes every dirty row to RocksDB, makes it durable, and deletes the push logs it covers.
  // Pushes may go on meanwhile (into the next log). Done automatically in the background when the
  // log exceeds flush_log_bytes, and on destruction. No-op in memory-only mode.
  void Flush();

  // A consistent copy of the shard (flushed; pushes wait meanwhile) in `checkpoint_dir` (created;
  // must not hold a checkpoint yet): a RocksDB checkpoint in db/ plus the manifest.
  // std::logic_error in memory-only mode.
  void Checkpoint(const std::string& checkpoint_dir);

  ShardStats Stats() const;

  // Rows stored (in memory or on disk); cheap.
  int64_t num_rows() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Replaces the shard directory `shard_dir` (its rows and push logs) with the checkpoint in
// `checkpoint_dir`. The store of shard_dir must be closed.
void RestoreShardCheckpoint(const std::string& checkpoint_dir, const std::string& shard_dir);

}  // namespace shardrec::ps
