#pragma once
// The resolved feature set of a job: which column each feature reads, how it is transformed,
// and which embedding table it uses. Built once from a validated config; everything downstream
// (readers, trainer, models) speaks in these indices.
#include <string>
#include <vector>

#include "ps/table_spec.h"

namespace shardrec::config {
class Job;
}

namespace shardrec::data {

enum class FeatureKind { kSparse, kDense, kSequence };
enum class Pooling { kMean, kSum, kConcat };
enum class DenseTransform { kNone, kLog, kMinMax };

struct FeatureSpec {
  std::string name;
  FeatureKind kind = FeatureKind::kSparse;
  std::string column;  // source column name

  // Sparse and sequence features.
  int table = -1;  // index into FeatureSchema::tables
  int dim = 0;     // the table's dimension
  int sparse_index = -1;  // position in Batch::sparse
  Pooling pooling = Pooling::kMean;
  int max_len = 50;
  char separator = '|';
  std::vector<std::string> padding;  // raw values dropped from sequences

  // Dense features.
  int dense_index = -1;  // column in Batch::dense
  DenseTransform transform = DenseTransform::kNone;
  float min = 0.f, max = 1.f, fill = 0.f;
};

struct FeatureSchema {
  std::vector<FeatureSpec> features;
  std::vector<ps::TableSpec> tables;
  std::vector<std::string> label_columns;  // one per task
  std::string group_column;                // for GAUC; empty = none
  int num_dense = 0;
  int num_sparse = 0;  // sparse + sequence features

  // Index of the feature called `name`, or -1.
  int Find(const std::string& name) const;
};

// Builds the schema of a job that config validation has accepted.
FeatureSchema BuildSchema(const config::Job& job);

}  // namespace shardrec::data
