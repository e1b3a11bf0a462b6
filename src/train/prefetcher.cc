#include "train/prefetcher.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace shardrec::train {

Prefetcher::Prefetcher(const data::FeatureSchema& schema, data::BatchPipeline* pipeline, ps::PsClient* ps, int depth,
                       bool read_only, bool pull_ahead)
    : schema_(schema),
      pipeline_(pipeline),
      ps_(ps),
      depth_(static_cast<size_t>(std::max(0, depth))),
      read_only_(read_only),
      pull_ahead_(pull_ahead || read_only) {
  if (depth_ > 0) thread_ = std::thread([this] { Loop(); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  space_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Prefetcher::Loop() {
  try {
    for (;;) {
      std::unique_ptr<PreparedBatch> pb;
      {
        std::unique_lock<std::mutex> l(mu_);
        space_cv_.wait(l, [&] { return stop_ || ready_.size() < depth_; });
        if (stop_) return;
        if (!free_.empty()) {
          pb = std::move(free_.back());
          free_.pop_back();
        }
      }
      if (!pb) pb = std::make_unique<PreparedBatch>();
      if (!pipeline_->Next(&pb->batch)) break;
      Prepare(pb.get());
      {
        std::lock_guard<std::mutex> l(mu_);
        ready_.push_back(std::move(pb));
      }
      ready_cv_.notify_one();
    }
  } catch (...) {
    std::lock_guard<std::mutex> l(mu_);
    error_ = std::current_exception();
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    done_ = true;
  }
  ready_cv_.notify_all();
}

void Prefetcher::Prepare(PreparedBatch* pb) {
  const data::Batch& b = pb->batch;
  const int64_t rows = b.rows;
  pb->tables.resize(schema_.tables.size());
  pb->features.resize(schema_.num_sparse);

  std::vector<size_t> expected(schema_.tables.size(), 0);
  for (const auto& f : schema_.features)
    if (f.kind != data::FeatureKind::kDense) expected[f.table] += b.sparse[f.sparse_index].ids.size();
  for (size_t t = 0; t < pb->tables.size(); ++t) {
    pb->tables[t].ids.clear();
    pb->tables[t].index.Reset(expected[t]);
  }

  constexpr int64_t kPad = -1;  // replaced by the table's padding row once its size is known
  for (const auto& f : schema_.features) {
    if (f.kind == data::FeatureKind::kDense) continue;
    const data::SparseColumn& col = b.sparse[f.sparse_index];
    TableRows& table = pb->tables[f.table];
    FeatureIndex& fi = pb->features[f.sparse_index];
    auto pos_of = [&](int64_t id) {
      bool inserted;
      int32_t p = table.index.Insert(id, &inserted);
      if (inserted) table.ids.push_back(id);
      return static_cast<int64_t>(p);
    };
    if (f.kind == data::FeatureKind::kSparse) {
      fi.positions.resize(rows);
      for (int64_t r = 0; r < rows; ++r)
        fi.positions[r] = col.offsets[r + 1] > col.offsets[r] ? pos_of(col.ids[col.offsets[r]]) : kPad;
    } else if (f.pooling != data::Pooling::kConcat) {
      fi.positions.resize(col.ids.size());
      fi.offsets.resize(rows);
      fi.lengths.resize(rows);
      for (size_t k = 0; k < col.ids.size(); ++k) fi.positions[k] = pos_of(col.ids[k]);
      for (int64_t r = 0; r < rows; ++r) {
        fi.offsets[r] = col.offsets[r];
        fi.lengths[r] = col.offsets[r + 1] - col.offsets[r];
      }
    } else {
      const int64_t L = f.max_len;
      fi.positions.assign(rows * L, kPad);
      fi.lengths.resize(rows);
      for (int64_t r = 0; r < rows; ++r) {
        int64_t begin = col.offsets[r], end = col.offsets[r + 1];
        int64_t n = std::min<int64_t>(end - begin, L);
        begin = end - n;  // the most recent n ids
        int64_t* out = &fi.positions[r * L + (L - n)];
        for (int64_t k = 0; k < n; ++k) out[k] = pos_of(col.ids[begin + k]);
        fi.lengths[r] = n;
      }
    }
  }

  for (const auto& f : schema_.features) {
    if (f.kind == data::FeatureKind::kDense) continue;
    const int64_t pad = static_cast<int64_t>(pb->tables[f.table].ids.size());
    for (int64_t& p : pb->features[f.sparse_index].positions)
      if (p == kPad) p = pad;
  }

  for (size_t t = 0; t < pb->tables.size(); ++t) {
    TableRows& table = pb->tables[t];
    const int dim = schema_.tables[t].dim;
    const int64_t n = static_cast<int64_t>(table.ids.size());
    table.rows.resize((n + 1) * dim);
    std::memset(table.rows.data() + n * dim, 0, sizeof(float) * dim);
  }
  pb->rows_pulled = false;
  // Without pull-ahead the rows are pulled when the batch is handed out (Refresh); depth 0 hands
  // it out right now.
  if (pull_ahead_ || depth_ == 0) PullAll(pb);
}

void Prefetcher::PullAll(PreparedBatch* pb) {
  {
    std::lock_guard<std::mutex> l(push_mu_);
    pb->pulled_after_push = push_seq_;
  }
  for (size_t t = 0; t < pb->tables.size(); ++t) {
    TableRows& table = pb->tables[t];
    const int64_t n = static_cast<int64_t>(table.ids.size());
    if (n > 0) ps_->Pull(static_cast<int>(t), table.ids.data(), n, table.rows.data(), read_only_);
  }
  pb->rows_pulled = true;
}

void Prefetcher::Refresh(PreparedBatch* pb) {
  if (!pb->rows_pulled) {
    PullAll(pb);
    return;
  }
  // Scratch kept across calls (consumer thread only): no allocation per batch once warm.
  std::vector<std::vector<int32_t>>& stale = refresh_stale_;
  stale.resize(pb->tables.size());
  for (auto& v : stale) v.clear();
  {
    std::lock_guard<std::mutex> l(push_mu_);
    for (const PushRecord& rec : pushes_) {
      if (rec.seq <= pb->pulled_after_push) continue;
      const IdIndex& index = pb->tables[rec.table].index;
      for (int64_t id : rec.ids)
        if (int32_t p = index.Find(id); p >= 0) stale[rec.table].push_back(p);
    }
    // Records every outstanding batch has already seen can go (their buffers are reused).
    uint64_t oldest = pb->pulled_after_push;
    {
      std::lock_guard<std::mutex> l2(mu_);
      for (const auto& r : ready_) oldest = std::min(oldest, r->pulled_after_push);
    }
    while (!pushes_.empty() && pushes_.front().seq <= oldest) {
      spare_ids_.push_back(std::move(pushes_.front().ids));
      pushes_.pop_front();
    }
  }
  std::vector<int64_t>& ids = refresh_ids_;
  std::vector<float>& rows = refresh_rows_;
  for (size_t t = 0; t < stale.size(); ++t) {
    auto& pos = stale[t];
    if (pos.empty()) continue;
    std::sort(pos.begin(), pos.end());
    pos.erase(std::unique(pos.begin(), pos.end()), pos.end());
    const int dim = schema_.tables[t].dim;
    TableRows& table = pb->tables[t];
    ids.resize(pos.size());
    for (size_t k = 0; k < pos.size(); ++k) ids[k] = table.ids[pos[k]];
    rows.resize(pos.size() * dim);
    ps_->Pull(static_cast<int>(t), ids.data(), static_cast<int64_t>(ids.size()), rows.data(), read_only_);
    for (size_t k = 0; k < pos.size(); ++k)
      std::memcpy(&table.rows[static_cast<size_t>(pos[k]) * dim], &rows[k * dim], sizeof(float) * dim);
  }
  std::lock_guard<std::mutex> l(push_mu_);
  pb->pulled_after_push = push_seq_;
}

std::unique_ptr<PreparedBatch> Prefetcher::Next() {
  std::unique_ptr<PreparedBatch> pb;
  if (depth_ == 0) {
    if (!free_.empty()) {
      pb = std::move(free_.back());
      free_.pop_back();
    } else {
      pb = std::make_unique<PreparedBatch>();
    }
    if (!pipeline_->Next(&pb->batch)) return nullptr;
    Prepare(pb.get());
    return pb;
  }
  {
    std::unique_lock<std::mutex> l(mu_);
    ready_cv_.wait(l, [&] { return !ready_.empty() || done_; });
    if (ready_.empty()) {
      if (error_) std::rethrow_exception(error_);
      return nullptr;
    }
    pb = std::move(ready_.front());
    ready_.pop_front();
  }
  space_cv_.notify_one();
  if (!read_only_) {
    const auto start = std::chrono::steady_clock::now();
    Refresh(pb.get());
    refresh_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return pb;
}

void Prefetcher::Recycle(std::unique_ptr<PreparedBatch> batch) {
  std::lock_guard<std::mutex> l(mu_);
  free_.push_back(std::move(batch));
}

void Prefetcher::NotePush(int table, const int64_t* ids, int64_t n) {
  if (depth_ == 0 || !pull_ahead_) return;  // nothing is pulled ahead
  std::lock_guard<std::mutex> l(push_mu_);
  std::vector<int64_t> copy;
  if (!spare_ids_.empty()) {
    copy = std::move(spare_ids_.back());
    spare_ids_.pop_back();
  }
  copy.assign(ids, ids + n);
  pushes_.push_back({++push_seq_, table, std::move(copy)});
}

}  // namespace shardrec::train
