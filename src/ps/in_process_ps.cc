// The in-process PsClient: shards (ShardStore: row cache, optionally RocksDB + push log) held in
// this process, talked to directly (no RPC). A call buckets its ids by shard (counting sort into a
// per-thread scratch buffer), then serves each shard's slice under that shard's lock, once.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/hash.h"
#include "ps/ps_client.h"
#include "ps/routing.h"
#include "ps/shard_store.h"

namespace shardrec::ps {
namespace {

namespace fs = std::filesystem;

std::string ShardDirName(int shard) { return "shard-" + std::to_string(shard); }

// Indices of the shard-<i> folders in `dir`, sorted.
std::vector<int> ShardDirs(const std::string& dir) {
  std::vector<int> shards;
  if (!fs::is_directory(dir)) return shards;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("shard-", 0) != 0 || name.size() == 6 ||
        name.find_first_not_of("0123456789", 6) != std::string::npos)
      continue;
    shards.push_back(std::stoi(name.substr(6)));
  }
  std::sort(shards.begin(), shards.end());
  return shards;
}

// Rows are routed by hash % num_shards: a data_dir written with another shard count would put
// every id in the wrong shard. Refuse it.
void CheckShardCount(const std::string& data_dir, int num_shards) {
  const std::vector<int> there = ShardDirs(data_dir);
  if (there.empty()) return;
  bool same = static_cast<int>(there.size()) == num_shards;
  for (size_t i = 0; same && i < there.size(); ++i) same = there[i] == static_cast<int>(i);
  if (!same)
    throw std::runtime_error("in-process PS: " + data_dir + " holds " + std::to_string(there.size()) +
                             " shard folder(s) (shard-" + std::to_string(there.front()) + " .. shard-" +
                             std::to_string(there.back()) + "), but the PS has num_shards " +
                             std::to_string(num_shards) + "; ids are routed by shard count, so it must match");
}

// Per-thread buffers reused across calls: no allocation per call once warm. A thread is in at
// most one Pull/Push at a time, so this is never shared.

class InProcessPs final : public PsClient {
 public:
  InProcessPs(std::vector<TableSpec> tables, const InProcessOptions& options) : specs_(std::move(tables)) {
    if (options.num_shards < 1)
      throw std::invalid_argument("in-process PS: num_shards must be >= 1, got " +
                                  std::to_string(options.num_shards));
    for (const TableSpec& t : specs_) {
      if (t.dim < 1)
        throw std::invalid_argument("in-process PS: table '" + t.name + "': dim must be >= 1, got " +
                                    std::to_string(t.dim));
    }
    if (!options.data_dir.empty()) {
      if (options.cache_bytes < options.num_shards)
        throw std::invalid_argument("in-process PS: cache_bytes must be >= num_shards, got " +
                                    std::to_string(options.cache_bytes));
      CheckShardCount(options.data_dir, options.num_shards);
    }
    shards_.reserve(options.num_shards);
    for (int s = 0; s < options.num_shards; ++s) {
      ShardStoreOptions so;
      if (!options.data_dir.empty()) so.dir = (fs::path(options.data_dir) / ShardDirName(s)).string();
      so.cache_bytes = options.cache_bytes / options.num_shards;
      so.sync_pushes = options.sync_pushes;
      so.log_pushes = options.log_pushes;
      so.flush_log_bytes = options.flush_log_bytes;
      shards_.push_back(std::make_unique<ShardStore>(specs_, so));
    }
  }

  const std::vector<TableSpec>& tables() const override { return specs_; }

  void Pull(int table, const int64_t* ids, int64_t n, float* out, bool read_only) override {
    CheckTable(table, "Pull");
    const ShardRoute& r = Route(table, ids, n);
    for (size_t s = 0; s < shards_.size(); ++s) {
      const int64_t b = r.begin[s], e = r.begin[s + 1];
      if (b < e) shards_[s]->Pull(table, ids, r.positions.data() + b, e - b, out, read_only);
    }
  }

  void Push(int table, const int64_t* ids, int64_t n, const float* grads) override {
    CheckTable(table, "Push");
    const ShardRoute& r = Route(table, ids, n);
    for (size_t s = 0; s < shards_.size(); ++s) {
      const int64_t b = r.begin[s], e = r.begin[s + 1];
      if (b < e) shards_[s]->Push(table, ids, r.positions.data() + b, e - b, grads);
    }
  }

  // Pushes are applied (and logged) synchronously: nothing is ever in flight.
  void Flush() override {}

  int64_t num_rows() const override {
    int64_t rows = 0;
    for (const auto& s : shards_) rows += s->num_rows();
    return rows;
  }

  void Checkpoint(const std::string& dir) override {
    for (size_t s = 0; s < shards_.size(); ++s)
      shards_[s]->Checkpoint((fs::path(dir) / ShardDirName(static_cast<int>(s))).string());
  }

  std::vector<ShardStats> Stats() const override {
    std::vector<ShardStats> stats;
    for (const auto& s : shards_) stats.push_back(s->Stats());
    return stats;
  }

 private:
  void CheckTable(int table, const char* what) const {
    if (table < 0 || table >= static_cast<int>(specs_.size()))
      throw std::out_of_range(std::string("in-process PS ") + what + ": table index " +
                              std::to_string(table) + " out of range [0, " +
                              std::to_string(specs_.size()) + ")");
  }

  const ShardRoute& Route(int table, const int64_t* ids, int64_t n) const {
    thread_local ShardRoute r;
    RouteByShard(table, ids, n, static_cast<uint32_t>(shards_.size()), &r);
    return r;
  }

  std::vector<TableSpec> specs_;
  std::vector<std::unique_ptr<ShardStore>> shards_;
};

}  // namespace

std::unique_ptr<PsClient> MakeInProcessPs(std::vector<TableSpec> tables, InProcessOptions options) {
  return std::make_unique<InProcessPs>(std::move(tables), std::move(options));
}

void RestoreInProcessCheckpoint(const std::string& checkpoint_dir, const std::string& data_dir) {
  const std::vector<int> shards = ShardDirs(checkpoint_dir);
  for (size_t i = 0; i < shards.size(); ++i) {
    if (shards[i] != static_cast<int>(i))
      throw std::runtime_error("restoring " + data_dir + ": checkpoint " + checkpoint_dir + " lacks " +
                               ShardDirName(static_cast<int>(i)));
  }
  if (shards.empty())
    throw std::runtime_error("restoring " + data_dir + ": " + checkpoint_dir + " holds no shard-<i> folders");
  fs::create_directories(data_dir);
  for (int s : shards)
    RestoreShardCheckpoint((fs::path(checkpoint_dir) / ShardDirName(s)).string(),
                           (fs::path(data_dir) / ShardDirName(s)).string());
  // Shards beyond the checkpoint's count would make the PS refuse the folder: drop them.
  for (int s : ShardDirs(data_dir))
    if (s >= static_cast<int>(shards.size())) fs::remove_all(fs::path(data_dir) / ShardDirName(s));
}

}  // namespace shardrec::ps
