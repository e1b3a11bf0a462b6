#pragma once
// One shard of the in-process parameter server: a lock and, per table, the RowStore of the ids
// routed here. Pull and Push serve a whole batch slice under one lock acquisition.
#include <cstdint>
#include <mutex>
#include <vector>

#include "ps/row_initializer.h"
#include "ps/row_optimizer.h"
#include "ps/row_store.h"

namespace shardrec::ps {

// How the rows of one table are laid out, born and trained; shared, read-only, by all shards.
struct TableRules {
  TableRules(const TableSpec& spec, int table)
      : dim(spec.dim), initializer(spec.init, table), optimizer(spec.optimizer, spec.dim) {}
  int dim;
  RowInitializer initializer;
  RowOptimizer optimizer;
  int stride() const { return dim + optimizer.state_floats(); }
};

class Shard {
 public:
  explicit Shard(const std::vector<TableRules>& tables);

  // For each k < count, i = positions[k]: writes the row of ids[i] to out[i * dim]. Creates and
  // stores missing rows unless `read_only`. Returns the number of rows created.
  int64_t Pull(int table, const int64_t* ids, const int64_t* positions, int64_t count, float* out,
               bool read_only);

  // For each k < count, i = positions[k]: applies the optimizer to the row of ids[i] with
  // grads[i * dim], creating the row first when missing. Returns the number of rows created.
  int64_t Push(int table, const int64_t* ids, const int64_t* positions, int64_t count,
               const float* grads);

 private:
  float* NewRow(int table, int64_t id, RowStore& store, bool* created);

  const std::vector<TableRules>& tables_;
  std::mutex mu_;
  std::vector<RowStore> stores_;  // one per table, guarded by mu_
};

}  // namespace shardrec::ps
