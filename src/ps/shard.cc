#include "ps/shard.h"

#include <cstring>

namespace shardrec::ps {

Shard::Shard(const std::vector<TableRules>& tables) : tables_(tables) {
  stores_.reserve(tables.size());
  for (const TableRules& t : tables) stores_.emplace_back(t.stride());
}

// The row of `id`, created (initial weights, fresh optimizer state) when missing.
float* Shard::NewRow(int table, int64_t id, RowStore& store, bool* created) {
  float* row = store.FindOrAdd(id, created);
  if (*created) {
    const TableRules& rules = tables_[table];
    rules.initializer.Fill(id, row, rules.dim);
    rules.optimizer.InitState(row + rules.dim);
  }
  return row;
}

int64_t Shard::Pull(int table, const int64_t* ids, const int64_t* positions, int64_t count,
                    float* out, bool read_only) {
  const TableRules& rules = tables_[table];
  const int dim = rules.dim;
  const size_t row_bytes = sizeof(float) * dim;
  int64_t created_rows = 0;
  std::lock_guard<std::mutex> lock(mu_);
  RowStore& store = stores_[table];
  for (int64_t k = 0; k < count; ++k) {
    const int64_t i = positions[k];
    float* dst = out + i * dim;
    if (read_only) {
      if (const float* row = store.Find(ids[i])) {
        std::memcpy(dst, row, row_bytes);
      } else {
        rules.initializer.Fill(ids[i], dst, dim);
      }
    } else {
      bool created;
      std::memcpy(dst, NewRow(table, ids[i], store, &created), row_bytes);
      created_rows += created;
    }
  }
  return created_rows;
}

int64_t Shard::Push(int table, const int64_t* ids, const int64_t* positions, int64_t count,
                    const float* grads) {
  const TableRules& rules = tables_[table];
  const int dim = rules.dim;
  int64_t created_rows = 0;
  std::lock_guard<std::mutex> lock(mu_);
  RowStore& store = stores_[table];
  for (int64_t k = 0; k < count; ++k) {
    const int64_t i = positions[k];
    bool created;
    float* row = NewRow(table, ids[i], store, &created);
    created_rows += created;
    rules.optimizer.Apply(row, row + dim, grads + i * dim);
  }
  return created_rows;
}

}  // namespace shardrec::ps
