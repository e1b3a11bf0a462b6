// The in-process PsClient: shards held in this process, talked to directly (no RPC). A call
// buckets its ids by shard (counting sort into a per-thread scratch buffer), then serves each
// shard's slice under that shard's lock, once.
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/hash.h"
#include "ps/ps_client.h"
#include "ps/shard.h"

namespace shardrec::ps {
namespace {

// Per-thread buffers reused across calls: no allocation per call once warm. A thread is in at
// most one Pull/Push at a time, so this is never shared.
struct RouteScratch {
  std::vector<uint32_t> shard_of;  // shard of ids[i]
  std::vector<int64_t> begin;      // positions[begin[s], begin[s + 1]) belong to shard s
  std::vector<int64_t> positions;  // indices into ids, grouped by shard
};

class InProcessPs final : public PsClient {
 public:
  InProcessPs(std::vector<TableSpec> tables, InProcessOptions options) : specs_(std::move(tables)) {
    if (options.num_shards < 1)
      throw std::invalid_argument("in-process PS: num_shards must be >= 1, got " +
                                  std::to_string(options.num_shards));
    rules_.reserve(specs_.size());
    for (size_t t = 0; t < specs_.size(); ++t) {
      if (specs_[t].dim < 1)
        throw std::invalid_argument("in-process PS: table '" + specs_[t].name +
                                    "': dim must be >= 1, got " + std::to_string(specs_[t].dim));
      rules_.emplace_back(specs_[t], static_cast<int>(t));
    }
    shards_.reserve(options.num_shards);
    for (int s = 0; s < options.num_shards; ++s) shards_.push_back(std::make_unique<Shard>(rules_));
  }

  const std::vector<TableSpec>& tables() const override { return specs_; }

  void Pull(int table, const int64_t* ids, int64_t n, float* out, bool read_only) override {
    CheckTable(table, "Pull");
    const RouteScratch& r = Route(table, ids, n);
    int64_t created = 0;
    for (size_t s = 0; s < shards_.size(); ++s) {
      const int64_t b = r.begin[s], e = r.begin[s + 1];
      if (b < e) created += shards_[s]->Pull(table, ids, r.positions.data() + b, e - b, out, read_only);
    }
    if (created) num_rows_.fetch_add(created, std::memory_order_relaxed);
  }

  void Push(int table, const int64_t* ids, int64_t n, const float* grads) override {
    CheckTable(table, "Push");
    const RouteScratch& r = Route(table, ids, n);
    int64_t created = 0;
    for (size_t s = 0; s < shards_.size(); ++s) {
      const int64_t b = r.begin[s], e = r.begin[s + 1];
      if (b < e) created += shards_[s]->Push(table, ids, r.positions.data() + b, e - b, grads);
    }
    if (created) num_rows_.fetch_add(created, std::memory_order_relaxed);
  }

  // Pushes are applied synchronously: nothing is ever in flight.
  void Flush() override {}

  int64_t num_rows() const override { return num_rows_.load(std::memory_order_relaxed); }

 private:
  void CheckTable(int table, const char* what) const {
    if (table < 0 || table >= static_cast<int>(specs_.size()))
      throw std::out_of_range(std::string("in-process PS ") + what + ": table index " +
                              std::to_string(table) + " out of range [0, " +
                              std::to_string(specs_.size()) + ")");
  }

  // Groups the indices of ids[0, n) by shard (stable counting sort). Shard of an id of table t:
  // Mix64(HashCombine(t, id)) % num_shards.
  const RouteScratch& Route(int table, const int64_t* ids, int64_t n) const {
    thread_local RouteScratch r;
    const size_t num_shards = shards_.size();
    r.begin.assign(num_shards + 1, 0);
    r.positions.resize(n);
    if (num_shards == 1) {
      for (int64_t i = 0; i < n; ++i) r.positions[i] = i;
      r.begin[1] = n;
      return r;
    }
    r.shard_of.resize(n);
    const uint64_t t = static_cast<uint64_t>(table);
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t s =
          static_cast<uint32_t>(Mix64(HashCombine(t, static_cast<uint64_t>(ids[i]))) % num_shards);
      r.shard_of[i] = s;
      ++r.begin[s + 1];
    }
    for (size_t s = 0; s < num_shards; ++s) r.begin[s + 1] += r.begin[s];
    // Fill with a moving cursor per shard, then shift `begin` back into place.
    for (int64_t i = 0; i < n; ++i) r.positions[r.begin[r.shard_of[i]]++] = i;
    for (size_t s = num_shards; s > 0; --s) r.begin[s] = r.begin[s - 1];
    r.begin[0] = 0;
    return r;
  }

  std::vector<TableSpec> specs_;
  std::vector<TableRules> rules_;  // read-only after construction; shards refer to it
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<int64_t> num_rows_{0};
};

}  // namespace

std::unique_ptr<PsClient> MakeInProcessPs(std::vector<TableSpec> tables, InProcessOptions options) {
  return std::make_unique<InProcessPs>(std::move(tables), options);
}

}  // namespace shardrec::ps
