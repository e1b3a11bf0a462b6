#include "ps/row_cache.h"

#include "common/hash.h"

namespace shardrec::ps {

namespace {

int64_t SlotWords(int stride) {
  return (24 + static_cast<int64_t>(stride) * sizeof(float) + 7) / 8;
}

}  // namespace

RowCache::RowCache(int stride)
    : stride_(stride), slot_words_(SlotWords(stride)), slots_(16, Slot{0, kEmpty}), mask_(15) {}

int64_t RowCache::RowBytes(int stride) { return SlotWords(stride) * 8 + 2 * sizeof(Slot); }

uint64_t RowCache::Home(int64_t id) const { return Mix64(static_cast<uint64_t>(id)) & mask_; }

int64_t RowCache::Insert(int64_t id) {
  if (2 * (size_ + 1) > static_cast<int64_t>(slots_.size())) Grow();
  uint64_t i = Home(id);
  while (slots_[i].row != kEmpty) i = (i + 1) & mask_;
  int64_t r;
  if (!free_rows_.empty()) {
    r = free_rows_.back();
    free_rows_.pop_back();
  } else {
    r = high_water_++;
    if ((r >> kBlockShift) >= static_cast<int64_t>(blocks_.size()))
      blocks_.emplace_back(new uint64_t[kBlockRows * slot_words_]);
  }
  slots_[i] = Slot{id, r};
  Header* h = header(r);
  h->id = id;
  h->seq = 0;
  h->flags = kLive;
  ++size_;
  return r;
}

void RowCache::Erase(int64_t row) {
  const int64_t id = header(row)->id;
  uint64_t i = Home(id);
  while (slots_[i].row != row) i = (i + 1) & mask_;
  // Backward-shift deletion: pull later entries of the probe run into the hole when their home
  // slot does not lie cyclically in (hole, entry].
  for (uint64_t j = (i + 1) & mask_; slots_[j].row != kEmpty; j = (j + 1) & mask_) {
    const uint64_t home = Home(slots_[j].id);
    const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (!stays) {
      slots_[i] = slots_[j];
      i = j;
    }
  }
  slots_[i].row = kEmpty;
  header(row)->flags = 0;
  free_rows_.push_back(row);
  --size_;
}

int64_t RowCache::NextVictim() {
  // Two sweeps clear every reference bit; a third finds nothing only when no row may be evicted.
  for (int64_t steps = 0; steps <= 3 * high_water_; ++steps) {
    if (hand_ >= high_water_) hand_ = 0;
    const int64_t r = hand_++;
    uint8_t& f = header(r)->flags;
    if (!(f & kLive) || (f & (kPending | kTemp))) continue;
    if (f & kRef) {
      f &= ~kRef;
      continue;
    }
    return r;
  }
  return -1;
}

void RowCache::Grow() {
  std::vector<Slot> old(2 * slots_.size(), Slot{0, kEmpty});
  old.swap(slots_);
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.row == kEmpty) continue;
    uint64_t i = Home(s.id);
    while (slots_[i].row != kEmpty) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

}  // namespace shardrec::ps
