#pragma once
// The batch every stage speaks: labels, dense values, and per sparse feature a jagged list of
// 64-bit ids (values + offsets, like TorchRec's KeyedJaggedTensor). Plain vectors so the data
// layer stays free of LibTorch; the trainer wraps them without copying.
#include <cstdint>
#include <vector>

namespace shardrec::data {

struct SparseColumn {
  std::vector<int64_t> ids;      // hashed values of all rows, concatenated
  std::vector<int32_t> offsets;  // rows + 1 entries; row r owns ids[offsets[r], offsets[r+1])
};

struct Batch {
  int64_t rows = 0;
  int num_labels = 1;
  std::vector<float> labels;  // rows * num_labels, row-major
  int num_dense = 0;
  std::vector<float> dense;   // rows * num_dense, row-major
  std::vector<SparseColumn> sparse;  // FeatureSchema::num_sparse columns, in sparse_index order
  std::vector<uint64_t> groups;      // per-row GAUC group key; empty when none is configured

  void Clear() {
    rows = 0;
    labels.clear();
    dense.clear();
    for (auto& c : sparse) {
      c.ids.clear();
      c.offsets.assign(1, 0);
    }
    groups.clear();
  }
};

}  // namespace shardrec::data
