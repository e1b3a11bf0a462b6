#pragma once
// Helpers of the data-layer tests: hand-built schemas (BuildSchema belongs to the config layer),
// reading a whole pipeline into rows, small files, and a pair-counting AUC.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "data/batch.h"
#include "data/feature_schema.h"
#include "data/pipeline.h"
#include "test_util.h"

namespace shardrec::data::testing {

class SchemaBuilder {
 public:
  SchemaBuilder& Labels(std::vector<std::string> columns) {
    schema_.label_columns = std::move(columns);
    return *this;
  }
  SchemaBuilder& Group(std::string column) {
    schema_.group_column = std::move(column);
    return *this;
  }
  SchemaBuilder& Sparse(const std::string& name, const std::string& column = "") {
    FeatureSpec f = Named(name, column, FeatureKind::kSparse);
    f.sparse_index = schema_.num_sparse++;
    return Add(std::move(f));
  }
  SchemaBuilder& Sequence(const std::string& name, const std::string& column, int max_len, char separator = '|',
                          std::vector<std::string> padding = {}) {
    FeatureSpec f = Named(name, column, FeatureKind::kSequence);
    f.sparse_index = schema_.num_sparse++;
    f.max_len = max_len;
    f.separator = separator;
    f.padding = std::move(padding);
    return Add(std::move(f));
  }
  SchemaBuilder& Dense(const std::string& name, const std::string& column = "",
                       DenseTransform transform = DenseTransform::kNone, float fill = 0.f, float min = 0.f,
                       float max = 1.f) {
    FeatureSpec f = Named(name, column, FeatureKind::kDense);
    f.dense_index = schema_.num_dense++;
    f.transform = transform;
    f.fill = fill;
    f.min = min;
    f.max = max;
    return Add(std::move(f));
  }
  // Makes the last added feature read `column` (which may be "").
  SchemaBuilder& FromColumn(const std::string& column) {
    schema_.features.back().column = column;
    return *this;
  }
  const FeatureSchema& schema() const { return schema_; }
  operator const FeatureSchema&() const { return schema_; }  // NOLINT

  // Index of a feature's column in Batch::sparse or Batch::dense.
  int SparseIndex(const std::string& name) const { return Get(name).sparse_index; }
  int DenseIndex(const std::string& name) const { return Get(name).dense_index; }

 private:
  FeatureSpec Named(const std::string& name, const std::string& column, FeatureKind kind) {
    FeatureSpec f;
    f.name = name;
    f.column = column.empty() ? name : column;
    f.kind = kind;
    return f;
  }
  SchemaBuilder& Add(FeatureSpec f) {
    if (f.kind != FeatureKind::kDense) {
      f.table = static_cast<int>(schema_.tables.size());
      f.dim = 4;
      ps::TableSpec t;
      t.name = f.name;
      t.dim = 4;
      schema_.tables.push_back(t);
    }
    schema_.features.push_back(std::move(f));
    return *this;
  }
  const FeatureSpec& Get(const std::string& name) const {
    for (const FeatureSpec& f : schema_.features)
      if (f.name == name) return f;
    throw std::runtime_error("no feature " + name);
  }
  FeatureSchema schema_;
};

// One row of a batch, for comparisons independent of batching.
struct Row {
  std::vector<float> labels;
  std::vector<float> dense;
  std::vector<std::vector<int64_t>> sparse;
  uint64_t group = 0;
  bool operator<(const Row& o) const {
    return std::tie(labels, dense, sparse, group) < std::tie(o.labels, o.dense, o.sparse, o.group);
  }
  bool operator==(const Row& o) const {
    return std::tie(labels, dense, sparse, group) == std::tie(o.labels, o.dense, o.sparse, o.group);
  }
};

inline Row RowOf(const Batch& b, int64_t r) {
  Row row;
  row.labels.assign(b.labels.begin() + r * b.num_labels, b.labels.begin() + (r + 1) * b.num_labels);
  row.dense.assign(b.dense.begin() + r * b.num_dense, b.dense.begin() + (r + 1) * b.num_dense);
  for (const SparseColumn& c : b.sparse) row.sparse.emplace_back(c.ids.begin() + c.offsets[r], c.ids.begin() + c.offsets[r + 1]);
  if (!b.groups.empty()) row.group = b.groups[static_cast<size_t>(r)];
  return row;
}

// Checks a batch's internal consistency (sizes and offsets).
inline void ExpectWellFormed(const Batch& b, const FeatureSchema& schema) {
  EXPECT_EQ(b.num_labels, static_cast<int>(schema.label_columns.size()));
  EXPECT_EQ(b.num_dense, schema.num_dense);
  EXPECT_EQ(b.labels.size(), static_cast<size_t>(b.rows * b.num_labels));
  EXPECT_EQ(b.dense.size(), static_cast<size_t>(b.rows * b.num_dense));
  ASSERT_EQ(b.sparse.size(), static_cast<size_t>(schema.num_sparse));
  for (const SparseColumn& c : b.sparse) {
    ASSERT_EQ(c.offsets.size(), static_cast<size_t>(b.rows + 1));
    EXPECT_EQ(c.offsets.front(), 0);
    EXPECT_EQ(static_cast<size_t>(c.offsets.back()), c.ids.size());
    EXPECT_TRUE(std::is_sorted(c.offsets.begin(), c.offsets.end()));
  }
  if (!schema.group_column.empty()) EXPECT_EQ(b.groups.size(), static_cast<size_t>(b.rows));
}

struct ReadResult {
  std::vector<Row> rows;
  std::vector<int64_t> batch_sizes;
  int64_t bad_lines = 0;
};

inline ReadResult ReadAll(const FeatureSchema& schema, const std::vector<std::string>& files, PipelineOptions options) {
  ReadResult result;
  BatchPipeline pipeline(schema, files, options);
  Batch b;
  while (pipeline.Next(&b)) {
    ExpectWellFormed(b, schema);
    result.batch_sizes.push_back(b.rows);
    for (int64_t r = 0; r < b.rows; ++r) result.rows.push_back(RowOf(b, r));
  }
  EXPECT_EQ(pipeline.rows_read(), static_cast<int64_t>(result.rows.size()));
  result.bad_lines = pipeline.bad_lines();
  return result;
}

// A fresh temporary directory (shardrec::testing::TempDir) removed again at the end of its scope.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& name) : path_(shardrec::testing::TempDir(name)) {}
  ~ScopedTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::string& path() const { return path_; }
  operator const std::string&() const { return path_; }  // NOLINT

 private:
  std::string path_;
};

inline std::string Sample(const std::string& relative) { return shardrec::testing::SamplesDir() + "/" + relative; }

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// Lines of a text file, a last line without '\n' included.
inline int64_t CountLines(const std::string& path) {
  const std::string text = ReadFile(path);
  int64_t n = std::count(text.begin(), text.end(), '\n');
  if (!text.empty() && text.back() != '\n') ++n;
  return n;
}

// AUC by direct count over all (positive, negative) pairs; ties count one half.
inline double PairAuc(const std::vector<double>& scores, const std::vector<int>& labels) {
  std::vector<double> pos, neg;
  for (size_t i = 0; i < scores.size(); ++i) (labels[i] ? pos : neg).push_back(scores[i]);
  if (pos.empty() || neg.empty()) return 0.5;
  double wins = 0;
  for (double p : pos)
    for (double n : neg) wins += p > n ? 1.0 : (p == n ? 0.5 : 0.0);
  return wins / (static_cast<double>(pos.size()) * static_cast<double>(neg.size()));
}

}  // namespace shardrec::data::testing
