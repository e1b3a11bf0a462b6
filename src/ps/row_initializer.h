#pragma once
// How a row is born. The initial value of a row is a pure function of (table index, seed, id):
// the same in every process, for any shard count and any call order, so a row need not be stored
// to be known (read-only pulls) and re-sharding never changes it.
#include <cstdint>

#include "ps/table_spec.h"

namespace shardrec::ps {

class RowInitializer {
 public:
  RowInitializer(const InitSpec& spec, int table);

  // Writes the initial value of row `id` to out[dim]. Element j depends only on
  // (seed, table, id, j), so a longer row extends a shorter one.
  void Fill(int64_t id, float* out, int dim) const;

 private:
  InitSpec spec_;
  uint64_t table_key_;  // HashCombine(seed, table)
};

}  // namespace shardrec::ps
