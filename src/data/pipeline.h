#pragma once
// Reads delimited text files into shuffled batches. Lines are parsed on background threads, so in
// steady state Next() returns a ready batch without touching the disk.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/batch.h"
#include "data/feature_schema.h"

namespace shardrec::data {

enum class FileFormat { kCsv, kTsv, kCriteoTsv };

// Which rows of the files a pipeline yields. When a job has no separate validation/test files,
// rows are assigned by a deterministic hash of (file index, line number).
struct SplitSpec {
  enum class Part { kAll, kTrain, kValidation, kTest };
  Part part = Part::kAll;
  double validation_fraction = 0.0;
  double test_fraction = 0.0;
  // Data-parallel workers: this reader keeps the records whose line number % num_workers ==
  // worker_index, so W workers read disjoint parts that together are the whole file, and worker
  // batches of B rows in file order together hold what one reader's batch of W * B rows holds.
  int worker_index = 0;
  int num_workers = 1;
};

struct PipelineOptions {
  FileFormat format = FileFormat::kCsv;
  char delimiter = 0;  // 0 = the format's default
  // Names of the columns of header-less files; empty = the first line of each file is a header.
  // kCriteoTsv implies label, I1..I13, C1..C26.
  std::vector<std::string> column_names;
  int64_t batch_size = 2048;
  int64_t shuffle_buffer = 0;  // rows; 0 = file order
  uint64_t seed = 1;
  int threads = 2;
  bool drop_last = false;
  bool skip_bad_lines = false;
  int64_t max_bad_lines = 1000;
  int queue_batches = 8;  // parsed batches held ahead of the consumer
  SplitSpec split;
};

class BatchPipeline {
 public:
  BatchPipeline(const FeatureSchema& schema, std::vector<std::string> files, PipelineOptions options);
  ~BatchPipeline();
  BatchPipeline(const BatchPipeline&) = delete;
  BatchPipeline& operator=(const BatchPipeline&) = delete;

  // Fills `out` with the next batch; false once the files are exhausted. Throws DataError (naming
  // file and line) on a malformed line unless skipping is configured, and when the skip budget
  // is exceeded.
  bool Next(Batch* out);

  int64_t rows_read() const;  // rows yielded so far
  int64_t bad_lines() const;  // lines skipped so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardrec::data
