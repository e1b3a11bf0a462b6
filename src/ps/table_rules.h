#pragma once
// How the rows of one table are laid out, born and trained: the table's initializer and row
// optimizer. Read-only once built; every shard holds the rules of all tables.
#include "ps/row_initializer.h"
#include "ps/row_optimizer.h"
#include "ps/table_spec.h"

namespace shardrec::ps {

struct TableRules {
  TableRules(const TableSpec& spec, int table)
      : dim(spec.dim), initializer(spec.init, table), optimizer(spec.optimizer, spec.dim) {}
  int dim;
  RowInitializer initializer;
  RowOptimizer optimizer;
  // Floats per row: weights followed by optimizer state.
  int stride() const { return dim + optimizer.state_floats(); }
};

}  // namespace shardrec::ps
