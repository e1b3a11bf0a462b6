#pragma once
// The rows of one table in one shard: an open-addressing id -> row-number map and an arena of
// fixed-size rows (weights followed by optimizer state) in blocks, so rows never move once
// created and growth never copies the arena. Not thread-safe: the owning Shard locks.
#include <cstdint>
#include <memory>
#include <vector>

namespace shardrec::ps {

class RowStore {
 public:
  // `stride`: floats per row (dim + optimizer state).
  explicit RowStore(int stride);

  // The row of `id`, or nullptr when it is not stored.
  float* Find(int64_t id);

  // The row of `id`; `*created` tells whether it was just added (its contents then undefined:
  // the caller initializes it).
  float* FindOrAdd(int64_t id, bool* created);

  int64_t size() const { return size_; }
  int stride() const { return stride_; }

 private:
  static constexpr int kBlockShift = 10;  // 1024 rows per arena block
  static constexpr int64_t kBlockRows = int64_t{1} << kBlockShift;
  static constexpr int64_t kEmpty = -1;

  struct Slot {
    int64_t id;
    int64_t row;  // kEmpty when the slot is free
  };

  float* RowPtr(int64_t row) {
    return blocks_[row >> kBlockShift].get() + (row & (kBlockRows - 1)) * stride_;
  }
  void Grow();

  int stride_;
  int64_t size_ = 0;
  std::vector<Slot> slots_;  // capacity a power of two, load <= 1/2
  uint64_t mask_ = 0;
  std::vector<std::unique_ptr<float[]>> blocks_;
};

}  // namespace shardrec::ps
