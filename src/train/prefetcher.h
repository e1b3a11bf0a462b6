#pragma once
// Keeps the next batches ready: a background thread reads a batch from the pipeline, dedups its
// ids per table and pulls their rows, `depth` batches ahead of the step. Rows pulled before this
// worker's latest pushes are refreshed when the batch is handed out, so prefetching never makes a
// step see a stale row of its own worker (sync mode).
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/feature_schema.h"
#include "data/pipeline.h"
#include "ps/ps_client.h"
#include "train/prepared_batch.h"

namespace shardrec::train {

class Prefetcher {
 public:
  // `read_only`: evaluation; rows of unseen ids are not created on the PS.
  // `pull_ahead` false: the background thread reads and dedups batches but pulls their rows only
  // when Next() hands them out. Synchronous multi-worker training needs this: the rows a step
  // trains on must include every worker's pushes of the step before, which exist only once all
  // workers passed the step's barrier.
  Prefetcher(const data::FeatureSchema& schema, data::BatchPipeline* pipeline, ps::PsClient* ps, int depth,
             bool read_only, bool pull_ahead = true);
  ~Prefetcher();

  // The next ready batch, or nullptr at the end of the data. Rethrows reader/PS errors.
  std::unique_ptr<PreparedBatch> Next();

  // Gives a used batch back so its buffers are reused.
  void Recycle(std::unique_ptr<PreparedBatch> batch);

  // Records that this worker pushed `ids` of `table` (called right after PsClient::Push).
  void NotePush(int table, const int64_t* ids, int64_t n);

  // Seconds Next() spent re-pulling rows pushed since they were prefetched (sync mode).
  double refresh_seconds() const { return refresh_seconds_; }

 private:
  void Loop();
  void Prepare(PreparedBatch* pb);
  void Refresh(PreparedBatch* pb);
  void PullAll(PreparedBatch* pb);

  const data::FeatureSchema& schema_;
  data::BatchPipeline* pipeline_;
  ps::PsClient* ps_;
  const size_t depth_;
  const bool read_only_;
  const bool pull_ahead_;

  std::mutex mu_;
  std::condition_variable ready_cv_, space_cv_;
  std::deque<std::unique_ptr<PreparedBatch>> ready_;
  std::vector<std::unique_ptr<PreparedBatch>> free_;
  bool done_ = false, stop_ = false;
  std::exception_ptr error_;

  // Push log for refreshing prefetched rows: (sequence number, table, ids).
  struct PushRecord {
    uint64_t seq;
    int table;
    std::vector<int64_t> ids;
  };
  std::mutex push_mu_;
  std::deque<PushRecord> pushes_;
  std::vector<std::vector<int64_t>> spare_ids_;  // buffers of dropped records, reused
  uint64_t push_seq_ = 0;

  // Refresh's scratch (consumer thread only).
  std::vector<std::vector<int32_t>> refresh_stale_;
  std::vector<int64_t> refresh_ids_;
  std::vector<float> refresh_rows_;

  double refresh_seconds_ = 0;
  std::thread thread_;
};

}  // namespace shardrec::train
