#pragma once
// The one door to sparse parameters. Models never own embedding tables: the trainer pulls the
// rows a batch touches, the model trains on them, and the trainer pushes their gradients back.
// The in-process implementation (this issue) and the gRPC client (parameter-server issue) sit
// behind this same interface.
#include <cstdint>
#include <memory>
#include <vector>

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
};

struct InProcessOptions {
  int num_shards = 4;
};

// Shards held in this process (in memory for now; RocksDB-backed in the parameter-server issue).
std::unique_ptr<PsClient> MakeInProcessPs(std::vector<TableSpec> tables, InProcessOptions options);

}  // namespace shardrec::ps
