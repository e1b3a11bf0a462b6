#pragma once
// The rows of one table held in memory by one shard: an open-addressing id -> row-number index and
// an arena of fixed-size slots in blocks, so a row never moves while it is cached. A slot holds a
// small header (id, the push sequence number last applied to the row, flag bits: CLOCK reference,
// dirty, ...) right before the row's floats (weights followed by optimizer state), so touching a
// row's bookkeeping costs no extra cache miss. Freed slots go to a free list and are reused.
// Not thread-safe: the owning ShardStore locks.
#include <cstdint>
#include <memory>
#include <vector>

namespace shardrec::ps {

class RowCache {
 public:
  // Row flag bits.
  static constexpr uint8_t kLive = 1;     // the row number holds a cached row
  static constexpr uint8_t kRef = 2;      // CLOCK: touched since the hand last passed
  static constexpr uint8_t kDirty = 4;    // differs from RocksDB (or not there yet)
  static constexpr uint8_t kOnDisk = 8;   // some version of the row is in RocksDB
  static constexpr uint8_t kPending = 16; // inserted by the current call, contents not read yet
  static constexpr uint8_t kTemp = 32;    // a read-only pull's placeholder, erased before unlock

  // `stride`: floats per row.
  explicit RowCache(int stride);

  // Bytes one cached row costs: its floats, its bookkeeping and its share of the index.
  static int64_t RowBytes(int stride);
  int64_t row_bytes() const { return RowBytes(stride_); }

  // The row number of `id`, or -1 when it is not cached.
  int64_t Find(int64_t id) const {
    for (uint64_t i = Home(id);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.row == kEmpty) return -1;
      if (s.id == id) return s.row;
    }
  }

  // Adds `id` (which must not be cached) and returns its row number. The row's floats and
  // sequence number are undefined; its flags are kLive.
  int64_t Insert(int64_t id);

  // Drops row `row` from the cache; its number is reused by a later Insert.
  void Erase(int64_t row);

  float* row(int64_t r) { return reinterpret_cast<float*>(header(r) + 1); }
  int64_t id(int64_t r) const { return header(r)->id; }
  uint64_t& seq(int64_t r) { return header(r)->seq; }
  uint8_t& flags(int64_t r) { return header(r)->flags; }

  int64_t size() const { return size_; }              // cached rows
  int64_t high_water() const { return high_water_; }  // every row number is below this
  int stride() const { return stride_; }

  // CLOCK (second chance): advances the hand to the next cached row whose reference bit is
  // clear, clearing the bits it passes, and returns it. Rows flagged kPending or kTemp are
  // skipped; -1 when no row can be evicted.
  int64_t NextVictim();

 private:
  static constexpr int kBlockShift = 10;  // 1024 rows per arena block
  static constexpr int64_t kBlockRows = int64_t{1} << kBlockShift;
  static constexpr int64_t kEmpty = -1;

  struct Slot {
    int64_t id;
    int64_t row;  // kEmpty when the slot is free
  };
  struct Header {
    int64_t id;
    uint64_t seq;
    uint8_t flags;
    uint8_t pad[7];
  };
  static_assert(sizeof(Header) == 24, "row header: 24 bytes, 8-byte aligned floats follow");

  Header* header(int64_t r) const {
    return reinterpret_cast<Header*>(blocks_[r >> kBlockShift].get() + (r & (kBlockRows - 1)) * slot_words_);
  }
  uint64_t Home(int64_t id) const;
  void Grow();

  int stride_;
  int64_t slot_words_;  // u64 words per arena slot: header + floats, rounded up
  int64_t size_ = 0;
  int64_t high_water_ = 0;
  int64_t hand_ = 0;
  std::vector<Slot> slots_;  // capacity a power of two, load <= 1/2
  uint64_t mask_ = 0;
  std::vector<int64_t> free_rows_;
  std::vector<std::unique_ptr<uint64_t[]>> blocks_;
};

}  // namespace shardrec::ps
