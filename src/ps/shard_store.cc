#include "ps/shard_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <exception>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>

#include "ps/push_log.h"
#include "ps/row_cache.h"
#include "ps/shard_manifest.h"
#include "ps/table_rules.h"

namespace shardrec::ps {
namespace {

namespace fs = std::filesystem;

constexpr size_t kKeyBytes = 12;
constexpr uint32_t kMetaTable = 0xffffffffu;  // key [kMetaTable][0]: {u64 rows on disk, u64 max seq}
constexpr int64_t kFlushChunkRows = 1 << 16;  // rows scanned per lock hold when flushing
constexpr double kEvictTarget = 0.9;          // evict down to this fraction of the budget

void EncodeKey(char* k, uint32_t table, int64_t id) {
  const uint64_t u = static_cast<uint64_t>(id);
  for (int b = 0; b < 4; ++b) k[b] = static_cast<char>(table >> (24 - 8 * b));
  for (int b = 0; b < 8; ++b) k[4 + b] = static_cast<char>(u >> (56 - 8 * b));
}

int64_t DivCeil(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

struct ShardStore::Impl {
  Impl(const std::vector<TableSpec>& tables, ShardStoreOptions options);
  ~Impl();

  // --- Row access (mu held) ---
  template <typename OnRow>
  void Resolve(int t, const int64_t* ids, const int64_t* positions, int64_t count, bool create, int64_t* created,
               OnRow on_row);
  void ReadMisses(int t, bool create, int64_t* created);
  void DropPending(int t);
  void EraseTemps(int t);
  void EvictIfOverBudget();
  void InitRow(int t, int64_t r);
  void ApplyRecord(const PushRecord& rec);

  // --- RocksDB (mu held) ---
  void PutRow(rocksdb::WriteBatch& b, int t, int64_t r);
  void PutMeta(rocksdb::WriteBatch& b, int64_t disk_rows_after);
  void Write(rocksdb::WriteBatch& b, const char* what);
  void WriteDirty(int t, int64_t begin, int64_t end);

  // --- Log and flush ---
  void RotateLog();                                               // mu held
  void FlushLocked(std::unique_lock<std::mutex>& l, bool yield);  // flush_mu and l (mu) held
  void FlusherLoop();
  void RethrowFlushError();  // mu held

  std::string Where() const { return "shard store " + opt.dir; }

  ShardStoreOptions opt;
  bool backed;
  std::vector<TableRules> rules;

  mutable std::mutex mu;  // everything below; a Pull/Push/flush chunk holds it
  std::vector<RowCache> caches;  // one per table
  int64_t bytes_cached = 0;
  uint64_t next_seq = 1;
  int64_t disk_rows = 0;  // rows in RocksDB (mirrors the meta key)
  // Last request_seq applied per remote client (ShardServer's duplicate check), persisted in the
  // meta key and rebuilt from the push log on replay, so a retry is recognised across restarts.
  std::unordered_map<uint64_t, uint64_t> client_seq;
  std::string meta_scratch;
  std::atomic<int64_t> rows{0};
  ShardStats counters;  // hits, misses, calls, evictions, writebacks, flushes

  std::unique_ptr<rocksdb::DB> db;
  rocksdb::WriteOptions write_options;
  rocksdb::ReadOptions read_options;
  std::unique_ptr<PushLogWriter> log;
  uint64_t log_generation = 0;

  // Scratch of the call holding mu.
  std::vector<int64_t> rows_of;  // row number per k, for Push and replay
  std::vector<int64_t> misses;   // rows of this call still to read from RocksDB
  std::vector<std::pair<int64_t, int64_t>> deferred;  // (k, row) usable once misses are read
  std::vector<int64_t> temps;    // read-only placeholders to erase before unlocking
  std::vector<int64_t> iota;     // 0, 1, 2, ... for replayed records
  std::vector<uint8_t> replay_apply;
  std::string keys;
  rocksdb::WriteBatch batch;
  std::string value;

  // Background flushing (only when backed). Lock order: flush_mu before mu.
  std::mutex flush_mu;
  std::condition_variable flush_cv;  // with mu
  bool flush_wanted = false, stopping = false;
  std::exception_ptr flush_error;
  std::thread flusher;
};

ShardStore::Impl::Impl(const std::vector<TableSpec>& tables, ShardStoreOptions options)
    : opt(std::move(options)), backed(!opt.dir.empty()) {
  rules.reserve(tables.size());
  caches.reserve(tables.size());
  for (size_t t = 0; t < tables.size(); ++t) {
    if (tables[t].dim < 1)
      throw std::invalid_argument("shard store: table '" + tables[t].name + "': dim must be >= 1, got " +
                                  std::to_string(tables[t].dim));
    rules.emplace_back(tables[t], static_cast<int>(t));
    caches.emplace_back(rules.back().stride());
  }
  if (!backed) return;
  if (opt.cache_bytes <= 0)
    throw std::invalid_argument(Where() + ": cache_bytes must be > 0, got " + std::to_string(opt.cache_bytes));
  if (opt.flush_log_bytes <= 0)
    throw std::invalid_argument(Where() + ": flush_log_bytes must be > 0, got " + std::to_string(opt.flush_log_bytes));

  fs::create_directories(opt.dir);
  CheckOrWriteManifest(opt.dir, ManifestTables(tables));

  // Point lookups of small, incompressible rows; our row cache is the hot tier, so RocksDB's
  // block cache stays small.
  rocksdb::BlockBasedTableOptions table_options;
  table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table_options.whole_key_filtering = true;
  table_options.data_block_index_type = rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
  table_options.data_block_hash_table_util_ratio = 0.75;
  table_options.block_cache =
      rocksdb::NewLRUCache(std::clamp<int64_t>(opt.cache_bytes / 16, int64_t{4} << 20, int64_t{32} << 20));
  table_options.format_version = 5;
  rocksdb::Options o;
  o.create_if_missing = true;
  o.compression = rocksdb::kNoCompression;
  o.bottommost_compression = rocksdb::kDisableCompressionOption;
  o.optimize_filters_for_hits = true;  // no filters on the last level: lookups mostly hit
  o.level_compaction_dynamic_level_bytes = true;
  o.memtable_whole_key_filtering = true;  // bloom filter in the memtable too
  o.memtable_prefix_bloom_size_ratio = 0.02;
  o.write_buffer_size = 64 << 20;
  o.max_write_buffer_number = 4;
  o.max_background_jobs = 2;
  o.max_open_files = -1;  // table readers (and their filters) stay open
  o.keep_log_file_num = 2;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));
  write_options.disableWAL = true;  // the push log is our WAL; see the header
  read_options.verify_checksums = true;

  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(o, (fs::path(opt.dir) / "db").string(), &raw);
  if (!s.ok()) throw std::runtime_error(Where() + ": cannot open RocksDB: " + s.ToString());
  db.reset(raw);

  char key[kKeyBytes];
  EncodeKey(key, kMetaTable, 0);
  std::string meta;
  const rocksdb::Status ms = db->Get(read_options, rocksdb::Slice(key, kKeyBytes), &meta);
  if (ms.ok() && meta.size() >= 16 && (meta.size() - 16) % 16 == 0) {
    uint64_t seq;
    std::memcpy(&disk_rows, meta.data(), 8);
    std::memcpy(&seq, meta.data() + 8, 8);
    next_seq = seq + 1;
    for (size_t off = 16; off < meta.size(); off += 16) {
      uint64_t client, request;
      std::memcpy(&client, meta.data() + off, 8);
      std::memcpy(&request, meta.data() + off + 8, 8);
      client_seq[client] = request;
    }
  } else if (!ms.IsNotFound()) {
    throw std::runtime_error(Where() + ": cannot read the shard's meta record: " +
                             (ms.ok() ? "size " + std::to_string(meta.size()) : ms.ToString()));
  }
  rows = disk_rows;

  // Replay the logs left by a crash (or by an interrupted flush), oldest first.
  const auto logs = ListPushLogs(opt.dir);
  std::unique_lock<std::mutex> fl(flush_mu);  // lock order: flush_mu, then mu
  std::unique_lock<std::mutex> l(mu);
  for (size_t i = 0; i < logs.size(); ++i) {
    const std::string& path = logs[i].second;
    const PushLogReadResult r = ReadPushLog(path, [&](const PushRecord& rec) { ApplyRecord(rec); });
    if (r.valid_bytes < r.file_bytes) {
      if (i + 1 < logs.size())
        throw std::runtime_error(Where() + ": push log " + path + " is corrupt at byte " +
                                 std::to_string(r.valid_bytes) + " of " + std::to_string(r.file_bytes) +
                                 " and is not the newest log: acknowledged pushes would be lost");
      // The newest log ends in a record cut short by a crash: it was never acknowledged.
      std::fprintf(stderr, "%s: push log %s: ignoring a torn last record (%lld bytes)\n", Where().c_str(),
                   path.c_str(), static_cast<long long>(r.file_bytes - r.valid_bytes));
      fs::resize_file(path, static_cast<uintmax_t>(r.valid_bytes));
    }
  }
  log_generation = logs.empty() ? 0 : logs.back().first;
  if (logs.empty()) {
    RotateLog();
  } else {
    FlushLocked(l, /*yield=*/false);  // persists the replayed rows, deletes the old logs
  }
  l.unlock();
  fl.unlock();
  flusher = std::thread([this] { FlusherLoop(); });
}

ShardStore::Impl::~Impl() {
  if (!backed) return;
  {
    std::lock_guard<std::mutex> l(mu);
    stopping = true;
  }
  flush_cv.notify_all();
  if (flusher.joinable()) flusher.join();
  try {
    std::lock_guard<std::mutex> fl(flush_mu);
    std::unique_lock<std::mutex> l(mu);
    FlushLocked(l, /*yield=*/false);
  } catch (const std::exception& e) {
    // The push logs are kept: the next open replays them.
    std::fprintf(stderr, "%s: flush on close failed (the push log will be replayed on the next open): %s\n",
                 Where().c_str(), e.what());
  }
  if (db) db->Close().PermitUncheckedError();
}

void ShardStore::Impl::InitRow(int t, int64_t r) {
  RowCache& c = caches[t];
  const TableRules& rule = rules[t];
  float* row = c.row(r);
  rule.initializer.Fill(c.id(r), row, rule.dim);
  rule.optimizer.InitState(row + rule.dim);
  c.seq(r) = 0;
}

// Finds or brings into the cache the row of ids[positions[k]] for each k, and calls on_row(k, row)
// once the row is usable: at once for cached rows (so a Pull copies a row while it is in the CPU
// cache), after one MultiGet for the others. Missing rows are created (born from the initializer)
// when `create`; otherwise a read-only miss is row -1 (memory-only) or a kTemp placeholder holding
// the initial weights (backed), erased by EraseTemps.
template <typename OnRow>
void ShardStore::Impl::Resolve(int t, const int64_t* ids, const int64_t* positions, int64_t count, bool create,
                               int64_t* created, OnRow on_row) {
  RowCache& c = caches[t];
  const int64_t row_bytes = c.row_bytes();
  misses.clear();
  deferred.clear();
  int64_t hits = 0;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t id = ids[positions[k]];
    int64_t r = c.Find(id);
    if (r >= 0) {
      uint8_t& f = c.flags(r);
      if (backed && !(f & RowCache::kRef)) f |= RowCache::kRef;  // no write (dirty cache line) if set
      ++hits;
      if (f & RowCache::kPending) {
        deferred.emplace_back(k, r);  // a duplicate of a miss of this call
      } else {
        on_row(k, r);
      }
    } else if (!backed) {
      if (create) {
        r = c.Insert(id);
        InitRow(t, r);
        c.flags(r) |= RowCache::kDirty | RowCache::kRef;
        bytes_cached += row_bytes;
        ++*created;
        rows.fetch_add(1, std::memory_order_relaxed);
      }
      on_row(k, r);
    } else {
      r = c.Insert(id);
      c.flags(r) |= RowCache::kPending | RowCache::kRef;
      bytes_cached += row_bytes;
      misses.push_back(r);
      deferred.emplace_back(k, r);
    }
  }
  counters.cache_hits += hits;
  counters.cache_misses += count - hits;
  if (!misses.empty()) ReadMisses(t, create, created);
  for (const auto& [k, r] : deferred) on_row(k, r);
  deferred.clear();
}

// One MultiGet for the rows of this call that were not cached.
void ShardStore::Impl::ReadMisses(int t, bool create, int64_t* created) {
  RowCache& c = caches[t];
  const size_t m = misses.size();
  // Sorted keys let MultiGet walk each file once.
  std::sort(misses.begin(), misses.end(), [&](int64_t a, int64_t b) {
    return static_cast<uint64_t>(c.id(a)) < static_cast<uint64_t>(c.id(b));
  });
  keys.resize(m * kKeyBytes);
  std::vector<rocksdb::Slice> key_slices(m);
  for (size_t j = 0; j < m; ++j) {
    EncodeKey(&keys[j * kKeyBytes], static_cast<uint32_t>(t), c.id(misses[j]));
    key_slices[j] = rocksdb::Slice(&keys[j * kKeyBytes], kKeyBytes);
  }
  std::vector<rocksdb::PinnableSlice> values(m);
  std::vector<rocksdb::Status> statuses(m);
  db->MultiGet(read_options, db->DefaultColumnFamily(), m, key_slices.data(), values.data(), statuses.data(),
               /*sorted_input=*/true);
  const TableRules& rule = rules[t];
  const size_t row_bytes = sizeof(float) * rule.stride();
  for (size_t j = 0; j < m; ++j) {
    const int64_t r = misses[j];
    uint8_t& f = c.flags(r);
    if (statuses[j].ok()) {
      if (values[j].size() != 8 + row_bytes) {
        DropPending(t);
        throw std::runtime_error(Where() + ": row " + std::to_string(c.id(r)) + " of table " + std::to_string(t) +
                                 " has " + std::to_string(values[j].size()) + " bytes on disk, expected " +
                                 std::to_string(8 + row_bytes));
      }
      std::memcpy(&c.seq(r), values[j].data(), 8);
      std::memcpy(c.row(r), values[j].data() + 8, row_bytes);
      f = static_cast<uint8_t>((f & ~RowCache::kPending) | RowCache::kOnDisk);
    } else if (statuses[j].IsNotFound()) {
      if (create) {
        InitRow(t, r);
        f = static_cast<uint8_t>((f & ~RowCache::kPending) | RowCache::kDirty);
        ++*created;
        rows.fetch_add(1, std::memory_order_relaxed);
      } else {
        rule.initializer.Fill(c.id(r), c.row(r), rule.dim);
        f = static_cast<uint8_t>((f & ~RowCache::kPending) | RowCache::kTemp);
        temps.push_back(r);
      }
    } else {
      const std::string why = statuses[j].ToString();
      DropPending(t);
      throw std::runtime_error(Where() + ": reading row " + std::to_string(c.id(r)) + " of table " +
                               std::to_string(t) + " failed: " + why);
    }
  }
  misses.clear();
}

// After a failed read: forgets the rows of this call that were never filled in.
void ShardStore::Impl::DropPending(int t) {
  RowCache& c = caches[t];
  for (int64_t r : misses) {
    if (c.flags(r) & RowCache::kPending) {
      c.Erase(r);
      bytes_cached -= c.row_bytes();
    }
  }
  misses.clear();
  EraseTemps(t);
}

void ShardStore::Impl::EraseTemps(int t) {
  RowCache& c = caches[t];
  for (int64_t r : temps) {
    c.Erase(r);
    bytes_cached -= c.row_bytes();
  }
  temps.clear();
}

void ShardStore::Impl::PutRow(rocksdb::WriteBatch& b, int t, int64_t r) {
  RowCache& c = caches[t];
  char key[kKeyBytes];
  EncodeKey(key, static_cast<uint32_t>(t), c.id(r));
  const size_t row_bytes = sizeof(float) * c.stride();
  value.resize(8 + row_bytes);
  std::memcpy(&value[0], &c.seq(r), 8);
  std::memcpy(&value[8], c.row(r), row_bytes);
  b.Put(rocksdb::Slice(key, kKeyBytes), value).PermitUncheckedError();
}

// Every batch carries the meta record, so that the row count and the sequence high-water mark
// on disk always match the rows on disk (a batch is atomic; what survives is a prefix).
void ShardStore::Impl::PutMeta(rocksdb::WriteBatch& b, int64_t disk_rows_after) {
  char key[kKeyBytes];
  EncodeKey(key, kMetaTable, 0);
  // {u64 rows, u64 seq, then (u64 client, u64 last request_seq) per remote client}.
  std::string& v = meta_scratch;
  v.resize(16 + 16 * client_seq.size());
  const uint64_t seq = next_seq - 1;
  std::memcpy(&v[0], &disk_rows_after, 8);
  std::memcpy(&v[8], &seq, 8);
  size_t off = 16;
  for (const auto& [client, request] : client_seq) {
    std::memcpy(&v[off], &client, 8);
    std::memcpy(&v[off + 8], &request, 8);
    off += 16;
  }
  b.Put(rocksdb::Slice(key, kKeyBytes), rocksdb::Slice(v)).PermitUncheckedError();
}

void ShardStore::Impl::Write(rocksdb::WriteBatch& b, const char* what) {
  const rocksdb::Status s = db->Write(write_options, &b);
  if (!s.ok()) throw std::runtime_error(Where() + ": " + what + ": RocksDB write failed: " + s.ToString());
}

// Evicts cold rows (CLOCK, each table in proportion to its bytes) down to kEvictTarget of the
// budget; dirty victims are written back in one batch.
void ShardStore::Impl::EvictIfOverBudget() {
  if (!backed || bytes_cached <= opt.cache_bytes) return;
  const int64_t to_free = bytes_cached - static_cast<int64_t>(kEvictTarget * static_cast<double>(opt.cache_bytes));
  std::vector<std::pair<int, int64_t>> victims;
  batch.Clear();
  int64_t new_on_disk = 0, dirty = 0;
  for (size_t t = 0; t < caches.size(); ++t) {
    RowCache& c = caches[t];
    const int64_t table_bytes = c.size() * c.row_bytes();
    if (table_bytes == 0) continue;
    const double share = static_cast<double>(to_free) * static_cast<double>(table_bytes) / bytes_cached;
    const int64_t n = std::min(c.size(), DivCeil(static_cast<int64_t>(share), c.row_bytes()));
    const size_t first = victims.size();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = c.NextVictim();
      if (r < 0) break;
      c.flags(r) |= RowCache::kPending;  // chosen: not a victim twice
      victims.emplace_back(static_cast<int>(t), r);
    }
    // In key order: RocksDB's memtable inserts sorted keys much faster than random ones.
    std::sort(victims.begin() + first, victims.end(), [&](const auto& a, const auto& b) {
      return static_cast<uint64_t>(c.id(a.second)) < static_cast<uint64_t>(c.id(b.second));
    });
    for (size_t v = first; v < victims.size(); ++v) {
      const int64_t r = victims[v].second;
      const uint8_t f = c.flags(r);
      if (f & RowCache::kDirty) {
        PutRow(batch, static_cast<int>(t), r);
        ++dirty;
        if (!(f & RowCache::kOnDisk)) ++new_on_disk;
      }
    }
  }
  if (dirty > 0) {
    PutMeta(batch, disk_rows + new_on_disk);
    try {
      Write(batch, "writing back evicted rows");
    } catch (...) {
      for (const auto& [t, r] : victims) caches[t].flags(r) &= ~RowCache::kPending;
      throw;
    }
    disk_rows += new_on_disk;
  }
  for (const auto& [t, r] : victims) {
    caches[t].Erase(r);
    bytes_cached -= caches[t].row_bytes();
  }
  counters.evictions += static_cast<int64_t>(victims.size());
  counters.writebacks += dirty;
}

// Writes the dirty rows among row numbers [begin, end) of table t, marking them clean.
void ShardStore::Impl::WriteDirty(int t, int64_t begin, int64_t end) {
  RowCache& c = caches[t];
  batch.Clear();
  std::vector<int64_t> written;
  int64_t new_on_disk = 0;
  for (int64_t r = begin; r < end; ++r) {
    const uint8_t f = c.flags(r);
    if ((f & RowCache::kLive) && (f & RowCache::kDirty)) {
      written.push_back(r);
      if (!(f & RowCache::kOnDisk)) ++new_on_disk;
    }
  }
  if (written.empty()) return;
  std::sort(written.begin(), written.end(), [&](int64_t a, int64_t b) {
    return static_cast<uint64_t>(c.id(a)) < static_cast<uint64_t>(c.id(b));
  });
  for (int64_t r : written) PutRow(batch, t, r);
  PutMeta(batch, disk_rows + new_on_disk);
  Write(batch, "flushing dirty rows");
  disk_rows += new_on_disk;
  for (int64_t r : written) {
    uint8_t& f = c.flags(r);
    f = static_cast<uint8_t>((f & ~RowCache::kDirty) | RowCache::kOnDisk);
  }
}

void ShardStore::Impl::RotateLog() {
  log.reset();
  ++log_generation;
  if (opt.log_pushes) log = std::make_unique<PushLogWriter>(PushLogPath(opt.dir, log_generation), opt.sync_pushes);
}

void ShardStore::Impl::FlushLocked(std::unique_lock<std::mutex>& l, bool yield) {
  if (!backed) return;
  // 1. New pushes go to the next log; the older logs cover every change not yet in RocksDB.
  const uint64_t covered = log_generation;
  RotateLog();
  // 2. Dirty rows to RocksDB, a chunk per lock hold when yielding (a row changed after its chunk
  //    was written is in the new log; a row evicted meanwhile was written back by the eviction).
  for (size_t t = 0; t < caches.size(); ++t) {
    for (int64_t begin = 0; begin < caches[t].high_water(); begin += kFlushChunkRows) {
      WriteDirty(static_cast<int>(t), begin, std::min(begin + kFlushChunkRows, caches[t].high_water()));
      if (yield) {
        l.unlock();
        l.lock();
      }
    }
  }
  // If nothing was dirty, the meta record may still be behind (sequence numbers of pushes that
  // changed rows already evicted and written): write it so that it never lags the logs we drop.
  batch.Clear();
  PutMeta(batch, disk_rows);
  Write(batch, "writing the shard's meta record");
  // 3. Durable: the memtables (our WAL-less writes) become SST files.
  if (yield) l.unlock();
  rocksdb::FlushOptions fo;
  fo.wait = true;
  const rocksdb::Status s = db->Flush(fo);
  if (yield) l.lock();
  if (!s.ok()) throw std::runtime_error(Where() + ": RocksDB flush failed: " + s.ToString());
  // 4. The covered logs are no longer needed.
  for (const auto& [generation, path] : ListPushLogs(opt.dir)) {
    if (generation > covered) continue;
    std::error_code ec;
    fs::remove(path, ec);
    if (ec) throw std::runtime_error(Where() + ": cannot delete push log " + path + ": " + ec.message());
  }
  ++counters.flushes;
}

void ShardStore::Impl::FlusherLoop() {
  std::unique_lock<std::mutex> l(mu);
  for (;;) {
    flush_cv.wait(l, [&] { return flush_wanted || stopping; });
    if (stopping) return;
    flush_wanted = false;
    l.unlock();
    try {
      std::lock_guard<std::mutex> fl(flush_mu);
      std::unique_lock<std::mutex> inner(mu);
      FlushLocked(inner, /*yield=*/true);
    } catch (...) {
      std::lock_guard<std::mutex> again(mu);
      flush_error = std::current_exception();
    }
    l.lock();
  }
}

void ShardStore::Impl::RethrowFlushError() {
  if (!flush_error) return;
  std::exception_ptr e = flush_error;
  flush_error = nullptr;
  std::rethrow_exception(e);
}

void ShardStore::Impl::ApplyRecord(const PushRecord& rec) {
  if (rec.table >= rules.size() || static_cast<int>(rec.dim) != rules[rec.table].dim)
    throw std::runtime_error(Where() + ": push log record " + std::to_string(rec.seq) + " is for table " +
                             std::to_string(rec.table) + " with dim " + std::to_string(rec.dim) +
                             ", which this shard does not have");
  if (rec.client != 0) {
    uint64_t& last = client_seq[rec.client];
    last = std::max(last, rec.request_seq);
  }
  const int t = static_cast<int>(rec.table);
  const int64_t n = static_cast<int64_t>(rec.ids.size());
  if (static_cast<int64_t>(iota.size()) < n) {
    iota.resize(n);
    std::iota(iota.begin(), iota.end(), int64_t{0});
  }
  int64_t created = 0;
  rows_of.resize(n);
  Resolve(t, rec.ids.data(), iota.data(), n, /*create=*/true, &created, [&](int64_t k, int64_t r) { rows_of[k] = r; });
  RowCache& c = caches[t];
  const TableRules& rule = rules[t];
  // Decide for every row before changing any, so that an id repeated within the record (which
  // Push does not promise against) is applied as often as it was live.
  replay_apply.resize(n);
  for (int64_t k = 0; k < n; ++k) replay_apply[k] = c.seq(rows_of[k]) < rec.seq;  // else: already in the row
  for (int64_t k = 0; k < n; ++k) {
    if (!replay_apply[k]) continue;
    const int64_t r = rows_of[k];
    float* row = c.row(r);
    rule.optimizer.Apply(row, row + rule.dim, rec.grads.data() + k * rule.dim);
    c.seq(r) = rec.seq;
    c.flags(r) |= RowCache::kDirty;
  }
  next_seq = std::max(next_seq, rec.seq + 1);
  EvictIfOverBudget();
}

// ---------------------------------------------------------------------------------------------

ShardStore::ShardStore(const std::vector<TableSpec>& tables, ShardStoreOptions options)
    : impl_(std::make_unique<Impl>(tables, std::move(options))) {}

ShardStore::~ShardStore() = default;

int64_t ShardStore::Pull(int table, const int64_t* ids, const int64_t* positions, int64_t count, float* out,
                         bool read_only) {
  Impl& m = *impl_;
  const TableRules& rule = m.rules.at(table);
  const int dim = rule.dim;
  const size_t row_bytes = sizeof(float) * dim;
  int64_t created = 0;
  if (count == 0) return 0;
  std::lock_guard<std::mutex> l(m.mu);
  RowCache& c = m.caches[table];
  m.Resolve(table, ids, positions, count, !read_only, &created, [&](int64_t k, int64_t r) {
    const int64_t i = positions[k];
    if (r >= 0) {
      std::memcpy(out + i * dim, c.row(r), row_bytes);
    } else {
      rule.initializer.Fill(ids[i], out + i * dim, dim);
    }
  });
  m.EraseTemps(table);
  ++m.counters.pulls;
  m.counters.rows_pulled += count;
  m.EvictIfOverBudget();
  return created;
}

int64_t ShardStore::Push(int table, const int64_t* ids, const int64_t* positions, int64_t count,
                         const float* grads, const PushTag* tag) {
  Impl& m = *impl_;
  const TableRules& rule = m.rules.at(table);
  const int dim = rule.dim;
  int64_t created = 0;
  if (count == 0) return 0;
  std::lock_guard<std::mutex> l(m.mu);
  m.RethrowFlushError();
  // Rows first (a failed read changes nothing), then the log (a failed append changes nothing),
  // then the update.
  m.rows_of.resize(count);
  m.Resolve(table, ids, positions, count, /*create=*/true, &created, [&](int64_t k, int64_t r) { m.rows_of[k] = r; });
  const uint64_t seq = m.next_seq++;
  if (m.log)
    m.log->Append(seq, static_cast<uint32_t>(table), dim, ids, positions, count, grads, tag ? tag->client : 0,
                  tag ? tag->request_seq : 0);
  if (tag && tag->client != 0) {
    uint64_t& last = m.client_seq[tag->client];
    last = std::max(last, tag->request_seq);
  }
  RowCache& c = m.caches[table];
  for (int64_t k = 0; k < count; ++k) {
    const int64_t r = m.rows_of[k];
    float* row = c.row(r);
    rule.optimizer.Apply(row, row + dim, grads + positions[k] * dim);
    c.seq(r) = seq;
    c.flags(r) |= RowCache::kDirty;
  }
  ++m.counters.pushes;
  m.counters.rows_pushed += count;
  if (m.backed) {
    m.EvictIfOverBudget();
    if (m.log && m.log->bytes() >= m.opt.flush_log_bytes && !m.flush_wanted) {
      m.flush_wanted = true;
      m.flush_cv.notify_one();
    }
  }
  return created;
}

uint64_t ShardStore::LastRequestSeq(uint64_t client) const {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  auto it = m.client_seq.find(client);
  return it == m.client_seq.end() ? 0 : it->second;
}

void ShardStore::Flush() {
  Impl& m = *impl_;
  if (!m.backed) return;
  std::lock_guard<std::mutex> fl(m.flush_mu);
  std::unique_lock<std::mutex> l(m.mu);
  m.RethrowFlushError();
  m.FlushLocked(l, /*yield=*/true);
}

void ShardStore::Checkpoint(const std::string& checkpoint_dir) {
  Impl& m = *impl_;
  if (!m.backed) throw std::logic_error("shard store: a memory-only shard cannot be checkpointed");
  std::lock_guard<std::mutex> fl(m.flush_mu);
  std::unique_lock<std::mutex> l(m.mu);  // held throughout: the copy is of one moment
  m.RethrowFlushError();
  m.FlushLocked(l, /*yield=*/false);
  const fs::path dir(checkpoint_dir);
  fs::create_directories(dir);
  if (fs::exists(dir / "db"))
    throw std::runtime_error(m.Where() + ": checkpoint directory " + checkpoint_dir + " already holds a checkpoint");
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(m.db.get(), &raw);
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  if (s.ok()) s = cp->CreateCheckpoint((dir / "db").string());
  if (!s.ok())
    throw std::runtime_error(m.Where() + ": checkpoint to " + checkpoint_dir + " failed: " + s.ToString());
  fs::copy_file(fs::path(m.opt.dir) / kShardManifestFile, dir / kShardManifestFile,
                fs::copy_options::overwrite_existing);
}

ShardStats ShardStore::Stats() const {
  const Impl& m = *impl_;
  std::lock_guard<std::mutex> l(m.mu);
  ShardStats s = m.counters;
  s.rows = m.rows.load();
  for (const RowCache& c : m.caches) s.rows_cached += c.size();
  s.bytes_cached = m.bytes_cached;
  if (m.backed) {
    uint64_t v = 0;
    if (m.db->GetIntProperty("rocksdb.estimate-num-keys", &v)) s.rows_on_disk = static_cast<int64_t>(v);
    if (m.db->GetIntProperty("rocksdb.total-sst-files-size", &v)) s.rocksdb_bytes += static_cast<int64_t>(v);
    if (m.db->GetIntProperty("rocksdb.cur-size-all-mem-tables", &v)) s.rocksdb_bytes += static_cast<int64_t>(v);
    s.log_bytes = m.log ? m.log->bytes() : 0;
  }
  return s;
}

int64_t ShardStore::num_rows() const { return impl_->rows.load(std::memory_order_relaxed); }

void RestoreShardCheckpoint(const std::string& checkpoint_dir, const std::string& shard_dir) {
  const fs::path from(checkpoint_dir), to(shard_dir);
  if (!fs::is_directory(from / "db") || !fs::exists(from / kShardManifestFile))
    throw std::runtime_error("restoring shard " + shard_dir + ": " + checkpoint_dir +
                             " is not a shard checkpoint (no db/ or " + kShardManifestFile + ")");
  // Build the new directory beside the old one, then swap by renames: a crash at any point leaves
  // the old or the new directory whole (at shard_dir, or beside it as .replaced / .restoring).
  const fs::path tmp = to.string() + ".restoring";
  fs::remove_all(tmp);
  fs::create_directories(tmp / "db");
  for (const auto& e : fs::directory_iterator(from / "db")) {
    if (!e.is_regular_file()) continue;
    const fs::path dst = tmp / "db" / e.path().filename();
    std::error_code ec;
    // SST files are immutable: share them when the file system allows.
    if (e.path().extension() == ".sst") fs::create_hard_link(e.path(), dst, ec);
    if (e.path().extension() != ".sst" || ec) fs::copy_file(e.path(), dst, fs::copy_options::overwrite_existing);
  }
  fs::copy_file(from / kShardManifestFile, tmp / kShardManifestFile);
  const fs::path old = to.string() + ".replaced";
  fs::remove_all(old);
  if (fs::exists(to)) fs::rename(to, old);
  fs::rename(tmp, to);
  fs::remove_all(old);
}

}  // namespace shardrec::ps
