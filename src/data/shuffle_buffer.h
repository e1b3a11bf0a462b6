#pragma once
// A seeded reservoir-style shuffle over rows: the buffer fills up, then every incoming row
// pushes a randomly chosen held row out. Its output depends only on the input row stream and the
// seed. Rows are stored columnar in fixed slots, so steady state allocates nothing.
#include <cstdint>
#include <vector>

#include "data/batch.h"
#include "data/feature_schema.h"
#include "data/rng.h"

namespace shardrec::data {

class ShuffleBuffer {
 public:
  ShuffleBuffer(const FeatureSchema& schema, int64_t capacity, uint64_t seed);

  // Takes row `row` of `src`; once the buffer is full, first moves a random held row to `out`.
  void Add(const Batch& src, int64_t row, Batch* out);

  // Moves a random held row to `out`; the buffer must not be empty.
  void PopRandom(Batch* out);

  bool empty() const { return size_ == 0; }
  int64_t size() const { return size_; }

 private:
  void Store(int64_t slot, const Batch& src, int64_t row);
  void Emit(int64_t slot, Batch* out) const;
  void MoveSlot(int64_t from, int64_t to);

  int64_t capacity_;
  int64_t size_ = 0;
  Rng rng_;
  size_t num_labels_, num_dense_;
  bool has_groups_;
  std::vector<int> single_columns_;    // sparse columns with exactly one id per row
  std::vector<int> sequence_columns_;  // sparse columns with a variable number of ids
  std::vector<float> labels_, dense_;
  std::vector<uint64_t> groups_;
  std::vector<int64_t> single_ids_;                // capacity x single_columns_
  std::vector<std::vector<int64_t>> sequence_ids_;  // per slot: its sequences, concatenated
  std::vector<int32_t> sequence_lengths_;           // capacity x sequence_columns_
};

}  // namespace shardrec::data
