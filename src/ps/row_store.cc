#include "ps/row_store.h"

#include "common/hash.h"

namespace shardrec::ps {

RowStore::RowStore(int stride) : stride_(stride), slots_(16, Slot{0, kEmpty}), mask_(15) {}

float* RowStore::Find(int64_t id) {
  for (uint64_t i = Mix64(static_cast<uint64_t>(id)) & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.row == kEmpty) return nullptr;
    if (s.id == id) return RowPtr(s.row);
  }
}

float* RowStore::FindOrAdd(int64_t id, bool* created) {
  if (2 * (size_ + 1) > static_cast<int64_t>(slots_.size())) Grow();
  uint64_t i = Mix64(static_cast<uint64_t>(id)) & mask_;
  for (;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.row == kEmpty) break;
    if (s.id == id) {
      *created = false;
      return RowPtr(s.row);
    }
  }
  const int64_t row = size_++;
  if ((row >> kBlockShift) >= static_cast<int64_t>(blocks_.size()))
    blocks_.emplace_back(new float[kBlockRows * stride_]);
  slots_[i] = Slot{id, row};
  *created = true;
  return RowPtr(row);
}

void RowStore::Grow() {
  std::vector<Slot> old(2 * slots_.size(), Slot{0, kEmpty});
  old.swap(slots_);
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.row == kEmpty) continue;
    uint64_t i = Mix64(static_cast<uint64_t>(s.id)) & mask_;
    while (slots_[i].row != kEmpty) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

}  // namespace shardrec::ps
