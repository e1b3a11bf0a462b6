#pragma once
// Open-addressing map from 64-bit id to its position among a batch's unique ids. Rebuilt for every
// batch with its memory kept, so deduplication allocates nothing in steady state.
#include <cstdint>
#include <vector>

#include "common/hash.h"

namespace shardrec::train {

class IdIndex {
 public:
  // Empties the map and sizes it for up to `n` distinct ids.
  void Reset(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    if (slots_.size() != cap) {
      keys_.resize(cap);
      slots_.resize(cap);
    }
    std::fill(slots_.begin(), slots_.end(), -1);
    mask_ = cap - 1;
    size_ = 0;
  }

  // Position of `id`, inserting it as position size() when new; `inserted` tells which.
  int32_t Insert(int64_t id, bool* inserted) {
    size_t h = Mix64(static_cast<uint64_t>(id)) & mask_;
    while (slots_[h] >= 0) {
      if (keys_[h] == id) {
        *inserted = false;
        return slots_[h];
      }
      h = (h + 1) & mask_;
    }
    keys_[h] = id;
    slots_[h] = static_cast<int32_t>(size_);
    *inserted = true;
    return static_cast<int32_t>(size_++);
  }

  // Position of `id`, or -1.
  int32_t Find(int64_t id) const {
    if (slots_.empty()) return -1;
    size_t h = Mix64(static_cast<uint64_t>(id)) & mask_;
    while (slots_[h] >= 0) {
      if (keys_[h] == id) return slots_[h];
      h = (h + 1) & mask_;
    }
    return -1;
  }

  size_t size() const { return size_; }

 private:
  std::vector<int64_t> keys_;
  std::vector<int32_t> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace shardrec::train
