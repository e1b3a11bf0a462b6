#pragma once
// The one door to sparse parameters. Models never own embedding tables: the trainer pulls the
// rows a batch touches, the model trains on them, and the trainer pushes their gradients back.
// The in-process implementation (this issue) and the gRPC client (parameter-server issue) sit
// behind this same interface.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ps/shard_stats.h"
#include "ps/table_spec.h"

namespace shardrec::ps {

class PsClient {
 public:
  virtual ~PsClient() = default;

  virtual const std::vector<TableSpec>& tables() const = 0;

  // Writes the rows of `n` distinct ids of `table` to out[n * dim], row i for ids[i]. A row that
  // does not exist yet is created with the table's initializer (a pure function of table, id
  // and seed) and stored, unless `read_only`: then its initial value is returned and nothing is
  // stored (evaluation must not grow the tables).
  virtual void Pull(int table, const int64_t* ids, int64_t n, float* out, bool read_only = false) = 0;

  // Applies the table's row optimizer to the rows of `n` distinct ids, with gradients
  // grads[n * dim]. Duplicate ids of a batch must be summed by the caller before pushing.
  virtual void Push(int table, const int64_t* ids, int64_t n, const float* grads) = 0;

  // Returns once every earlier Push of this client is applied.
  virtual void Flush() {}

  // Rows currently stored, over all tables and shards.
  virtual int64_t num_rows() const = 0;

  // Writes a copy of every shard to dir/shard-<i>: each shard's copy is of one moment, the whole
  // is consistent when no Push is in flight. std::logic_error where the PS keeps no files.
  virtual void Checkpoint(const std::string& dir) {
    (void)dir;
    throw std::logic_error("this parameter server cannot write checkpoints");
  }

  // Counters of each shard (empty where the PS does not report any).
  virtual std::vector<ShardStats> Stats() const { return {}; }
};

struct InProcessOptions {
  InProcessOptions() = default;
  explicit InProcessOptions(int shards) : num_shards(shards) {}  // InProcessOptions{n}, as before

  int num_shards = 4;
  // Empty: rows in memory only (no budget, no push log, no checkpoints). Else shard i lives in
  // data_dir/shard-<i> (RocksDB + push log + row cache); reopening needs the same num_shards.
  std::string data_dir;
  // Bytes of rows kept in memory over all shards (split evenly); colder rows live in RocksDB.
  int64_t cache_bytes = int64_t{4} << 30;
  // fsync each push before acknowledging it (survives a machine crash; else survives kill -9).
  bool sync_pushes = false;
  // Log each push before acknowledging it (see ShardStoreOptions::log_pushes).
  bool log_pushes = true;
  // Push-log size (per shard) at which dirty rows are flushed to RocksDB and a new log starts.
  int64_t flush_log_bytes = int64_t{256} << 20;
};

// Shards held in this process: in memory, or RocksDB-backed with a row cache (data_dir).
std::unique_ptr<PsClient> MakeInProcessPs(std::vector<TableSpec> tables, InProcessOptions options);

// Replaces the shards in data_dir with those of a checkpoint written by PsClient::Checkpoint of an
// in-process PS. No PS may have data_dir open.
void RestoreInProcessCheckpoint(const std::string& checkpoint_dir, const std::string& data_dir);

}  // namespace shardrec::ps
