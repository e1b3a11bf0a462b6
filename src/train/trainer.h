#pragma once
// The single-worker training loop: epochs of prefetch -> forward -> loss -> backward -> push
// sparse gradients + dense optimizer step, validation each epoch with early stopping, a final
// test evaluation, and OUTPUT_DIR/metrics.json.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "shardrec/config.pb.h"
#include "train/worker_group.h"

namespace shardrec::train {

// Metric name -> value for one data split ("auc", "logloss", "gauc"; "auc_<label>" per task of
// a multi-task model).
using MetricSet = std::map<std::string, double>;

struct EpochReport {
  int epoch = 0;
  double train_loss = 0;
  int64_t train_samples = 0;
  double seconds = 0;
  int64_t bad_lines = 0;  // malformed lines skipped (data.skip_bad_lines)
  int64_t steps = 0;
  // Seconds spent per phase of the step loop: wait (for the prefetched batch), refresh (re-pull of
  // prefetched rows this worker pushed since, sync mode), assemble, forward, backward, sync
  // (gradient allreduce left after backward, multi-worker), push (sparse gradients to the PS,
  // and the workers' barrier in sync mode), optimizer (dense step).
  std::map<std::string, double> phase_seconds;
  MetricSet validation;
};

struct TrainReport {
  std::vector<EpochReport> epochs;
  int best_epoch = 0;
  MetricSet validation;  // of the kept (best) weights
  // Of the kept (best epoch's) model: after the rollback of dense weights and PS rows, or, where
  // rows cannot be rolled back (memory-only shards), taken when validation improved.
  MetricSet test;
  double train_samples_per_sec = 0;  // end to end, waiting on data included
  double step_samples_per_sec = 0;   // inside the step only
  int64_t train_samples = 0;  // over all workers
  int num_workers = 1;
  int64_t checkpoints_written = 0;
  std::string resumed_from;  // the checkpoint this run continued, if any
  int64_t ps_rows = 0;
  // Summed over shards at the end of the run.
  int64_t ps_rows_cached = 0, ps_cache_hits = 0, ps_cache_misses = 0, ps_evictions = 0, ps_rocksdb_bytes = 0;
};

struct TrainerOptions {
  // Data-parallel workers: each reads its 1/W of the data, dense gradients are averaged through
  // workers.comm, sparse ones go to the (remote) PS scaled by 1/W. Only the chief (rank 0) writes
  // files (metrics.json, dense.pt, checkpoints).
  WorkerGroup workers;
  // A checkpoint folder, or a folder of checkpoints (the newest complete one is taken), to
  // continue a job of the same shape from. Remote PS shards must have been restored from its ps/
  // part by whoever started them (`shardrec launch --resume` does).
  std::string resume_from;
};

class Trainer {
 public:
  Trainer(config::Job job, std::string output_dir, TrainerOptions options = {});
  ~Trainer();

  // Trains and evaluates; writes metrics.json and the dense weights (dense.pt) to the output dir.
  TrainReport Run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The metrics.json text for a report.
std::string MetricsJson(const config::Job& job, const TrainReport& report);

}  // namespace shardrec::train
