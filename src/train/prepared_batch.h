#pragma once
// A batch made ready for a step: ids deduplicated per table, their rows pulled from the PS, and
// each feature's ids turned into positions among the pulled rows. Built on the prefetch thread.
#include <cstdint>
#include <vector>

#include "data/batch.h"
#include "train/id_index.h"

namespace shardrec::train {

struct TableRows {
  std::vector<int64_t> ids;  // distinct ids of the batch, first-occurrence order
  // (ids.size() + 1) * dim floats; the last row stays zero and stands for padding.
  std::vector<float> rows;
  IdIndex index;             // id -> position in ids
};

struct FeatureIndex {
  // Sparse: one position per row [B]. Pooled sequence: positions of all ids (embedding_bag
  // input) with per-row offsets [B]. Concat sequence: [B, max_len], right-aligned (most recent
  // last, like the reference's pre-padding), padding = the table's zero row.
  std::vector<int64_t> positions;
  std::vector<int64_t> offsets;
  std::vector<int64_t> lengths;
};

struct PreparedBatch {
  data::Batch batch;
  std::vector<TableRows> tables;        // by table index
  std::vector<FeatureIndex> features;   // by sparse_index
  uint64_t pulled_after_push = 0;       // pushes this client had made when the rows were pulled
  bool rows_pulled = false;             // false: ids are indexed, rows not pulled yet
};

}  // namespace shardrec::train
