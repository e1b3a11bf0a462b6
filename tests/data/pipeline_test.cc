// Threads, ordering, shuffling, batching, splits and shutdown of BatchPipeline, on generated data
// large enough to span many chunks.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <set>

#include "common/error.h"
#include "common/hash.h"
#include "data/generator.h"
#include "data/pipeline.h"
#include "data_test_util.h"

namespace shardrec::data {
namespace {

using testing::ReadAll;
using testing::ReadResult;
using testing::Row;
using testing::SchemaBuilder;
using testing::WriteFile;

SchemaBuilder CtrSchema() {
  SchemaBuilder s;
  s.Labels({"label"});
  for (int j = 1; j <= 13; ++j) s.Dense("I" + std::to_string(j), "", DenseTransform::kLog);
  for (int f = 1; f <= 26; ++f) s.Sparse("C" + std::to_string(f));
  return s;
}

SchemaBuilder SeqSchema() {
  SchemaBuilder s;
  s.Labels({"label"}).Group("user_id").Sparse("item_id").Sparse("cate_id");
  s.Sequence("hist_item_id", "hist_item_id", 20).Sequence("hist_cate_id", "hist_cate_id", 20);
  return s;
}

std::vector<Row> Sorted(std::vector<Row> rows) {
  std::sort(rows.begin(), rows.end());
  return rows;
}

class PipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(shardrec::testing::TempDir("pipeline"));
    GeneratorOptions ctr;
    ctr.kind = SyntheticKind::kCtr;
    ctr.rows = 20000;  // train.csv: 16000 rows, about 12 chunks
    ctr.seed = 5;
    ctr_ = new std::vector<std::string>(GenerateData(ctr, *dir_ + "/ctr"));
    GeneratorOptions seq;
    seq.kind = SyntheticKind::kSeq;
    seq.rows = 5000;
    seq_ = new std::vector<std::string>(GenerateData(seq, *dir_ + "/seq"));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete ctr_;
    delete seq_;
    delete dir_;
  }
  static PipelineOptions Options(int64_t batch_size, int64_t shuffle, int threads, uint64_t seed = 1) {
    PipelineOptions o;
    o.batch_size = batch_size;
    o.shuffle_buffer = shuffle;
    o.threads = threads;
    o.seed = seed;
    return o;
  }
  static const std::string& CtrTrain() { return (*ctr_)[0]; }
  static std::string* dir_;
  static std::vector<std::string>* ctr_;
  static std::vector<std::string>* seq_;
};
std::string* PipelineTest::dir_ = nullptr;
std::vector<std::string>* PipelineTest::ctr_ = nullptr;
std::vector<std::string>* PipelineTest::seq_ = nullptr;

TEST_F(PipelineTest, ShuffleKeepsTheMultisetOfRows) {
  const SchemaBuilder s = CtrSchema();
  const ReadResult plain = ReadAll(s, {CtrTrain()}, Options(512, 0, 2));
  ASSERT_EQ(plain.rows.size(), 16000u);
  const ReadResult shuffled = ReadAll(s, {CtrTrain()}, Options(512, 3000, 2, 7));
  ASSERT_EQ(shuffled.rows.size(), 16000u);
  EXPECT_NE(shuffled.rows, plain.rows);
  EXPECT_EQ(Sorted(shuffled.rows), Sorted(plain.rows));
  // A buffer larger than the data holds everything, then drains it.
  const ReadResult all = ReadAll(s, {CtrTrain()}, Options(512, 100000, 2, 7));
  EXPECT_EQ(Sorted(all.rows), Sorted(plain.rows));
}

TEST_F(PipelineTest, ShuffleKeepsSequencesAndGroups) {
  const SchemaBuilder s = SeqSchema();
  const ReadResult plain = ReadAll(s, {(*seq_)[0]}, Options(100, 0, 2));
  ASSERT_EQ(plain.rows.size(), 4000u);
  const ReadResult shuffled = ReadAll(s, {(*seq_)[0]}, Options(100, 700, 3, 11));
  EXPECT_NE(shuffled.rows, plain.rows);
  EXPECT_EQ(Sorted(shuffled.rows), Sorted(plain.rows));
}

TEST_F(PipelineTest, OutputIsTheSameForAnyThreadCount) {
  const SchemaBuilder s = CtrSchema();
  const ReadResult one = ReadAll(s, {CtrTrain(), (*ctr_)[1]}, Options(1000, 2500, 1, 3));
  const ReadResult three = ReadAll(s, {CtrTrain(), (*ctr_)[1]}, Options(1000, 2500, 3, 3));
  ASSERT_EQ(one.rows.size(), 18000u);
  EXPECT_EQ(one.batch_sizes, three.batch_sizes);
  EXPECT_TRUE(one.rows == three.rows);
  const ReadResult other_seed = ReadAll(s, {CtrTrain(), (*ctr_)[1]}, Options(1000, 2500, 3, 4));
  EXPECT_FALSE(one.rows == other_seed.rows);
  // Unshuffled: file order whatever the thread count.
  EXPECT_TRUE(ReadAll(s, {CtrTrain()}, Options(777, 0, 1)).rows == ReadAll(s, {CtrTrain()}, Options(777, 0, 4)).rows);
}

TEST_F(PipelineTest, BatchSizesAndDropLast) {
  const SchemaBuilder s = CtrSchema();
  EXPECT_EQ(ReadAll(s, {CtrTrain()}, Options(3000, 0, 2)).batch_sizes,
            (std::vector<int64_t>{3000, 3000, 3000, 3000, 3000, 1000}));
  EXPECT_EQ(ReadAll(s, {CtrTrain()}, Options(3000, 500, 2)).batch_sizes,
            (std::vector<int64_t>{3000, 3000, 3000, 3000, 3000, 1000}));
  PipelineOptions o = Options(3000, 0, 2);
  o.drop_last = true;
  EXPECT_EQ(ReadAll(s, {CtrTrain()}, o).batch_sizes, (std::vector<int64_t>{3000, 3000, 3000, 3000, 3000}));
  o.batch_size = 4000;  // divides evenly: nothing dropped
  EXPECT_EQ(ReadAll(s, {CtrTrain()}, o).rows.size(), 16000u);
}

TEST_F(PipelineTest, SplitsPartitionTheRows) {
  // Two files whose rows carry their own id, so each row can be told apart.
  const int kRows = 20000;
  std::vector<std::string> files;
  for (int f = 0; f < 2; ++f) {
    std::string text = "label,id\n";
    for (int i = 0; i < kRows; ++i) text += std::to_string(i % 2) + "," + std::to_string(f * kRows + i) + "\n";
    files.push_back(*dir_ + "/split" + std::to_string(f) + ".csv");
    WriteFile(files.back(), text);
  }
  SchemaBuilder s;
  s.Labels({"label"}).Dense("id");
  std::vector<std::set<int>> parts;
  for (SplitSpec::Part part : {SplitSpec::Part::kTrain, SplitSpec::Part::kValidation, SplitSpec::Part::kTest}) {
    PipelineOptions o = Options(1000, 0, 2);
    o.split.part = part;
    o.split.validation_fraction = 0.1;
    o.split.test_fraction = 0.2;
    std::set<int> ids;
    for (const Row& row : ReadAll(s, files, o).rows) {
      EXPECT_TRUE(ids.insert(static_cast<int>(row.dense[0])).second);
      EXPECT_EQ(row.labels[0], static_cast<float>(static_cast<int>(row.dense[0]) % 2));
    }
    parts.push_back(ids);
  }
  const double total = 2 * kRows;
  EXPECT_NEAR(parts[0].size() / total, 0.7, 0.015);
  EXPECT_NEAR(parts[1].size() / total, 0.1, 0.01);
  EXPECT_NEAR(parts[2].size() / total, 0.2, 0.015);
  std::set<int> all;
  for (const auto& p : parts) all.insert(p.begin(), p.end());
  EXPECT_EQ(all.size(), parts[0].size() + parts[1].size() + parts[2].size());  // disjoint
  EXPECT_EQ(static_cast<double>(all.size()), total);                          // covering
  // The same part again: the same rows (deterministic), and kAll yields every row.
  PipelineOptions o = Options(1000, 0, 3);
  o.split = {SplitSpec::Part::kValidation, 0.1, 0.2};
  std::set<int> again;
  for (const Row& row : ReadAll(s, files, o).rows) again.insert(static_cast<int>(row.dense[0]));
  EXPECT_EQ(again, parts[1]);
  o.split.part = SplitSpec::Part::kAll;
  EXPECT_EQ(ReadAll(s, files, o).rows.size(), static_cast<size_t>(total));
}

TEST_F(PipelineTest, DestructorStopsThreadsWhenTheConsumerStopsEarly) {
  const SchemaBuilder s = CtrSchema();
  for (int threads : {1, 3}) {
    for (int64_t shuffle : {0, 1000}) {
      PipelineOptions o = Options(64, shuffle, threads);
      o.queue_batches = 1;
      { BatchPipeline never_read(s, {CtrTrain()}, o); }
      BatchPipeline p(s, {CtrTrain(), CtrTrain()}, o);
      Batch b;
      ASSERT_TRUE(p.Next(&b));
      EXPECT_EQ(b.rows, 64);
      EXPECT_EQ(p.rows_read(), 64);
    }  // destroyed with the reader, parsers and assembler blocked on full queues
  }
}

TEST_F(PipelineTest, ErrorDeepInTheStreamSurfacesInOrder) {
  // A bad line far into a multi-chunk file: parsed on a background thread, thrown by Next()
  // after exactly the rows before it.
  const int kLines = 200000, kBad = 150000;
  std::string text = "label,x\n";
  for (int line = 2; line <= kLines; ++line) text += line == kBad ? "1,oops\n" : "0," + std::to_string(line) + "\n";
  const std::string path = *dir_ + "/deep.csv";
  WriteFile(path, text);
  SchemaBuilder s;
  s.Labels({"label"}).Dense("x");
  for (int threads : {1, 3}) {
    BatchPipeline p(s, {path}, Options(1000, 0, threads));
    Batch b;
    int64_t rows = 0;
    float last = 0;
    try {
      while (p.Next(&b)) {
        rows += b.rows;
        last = b.dense.back();
      }
      FAIL() << "expected DataError";
    } catch (const DataError& e) {
      EXPECT_EQ(std::string(e.what()), path + ":150000: column 'x' (feature 'x'): cannot parse 'oops' as a number");
    }
    // The 149998 good rows before it fill 149 whole batches; the partial one is not delivered.
    EXPECT_EQ(rows, 149000);
    EXPECT_EQ(last, 149001.f);  // row 149000 is line 149001
  }
}

TEST_F(PipelineTest, ThroughputReport) {
  // Not a timed assertion: prints the parse rate of Criteo-like rows (13 LOG dense, 26 sparse).
  const SchemaBuilder s = CtrSchema();
  const std::vector<std::string> files(8, CtrTrain());  // 128k rows, 23 MB
  for (auto [threads, shuffle] : {std::pair<int, int64_t>{1, 0}, {2, 0}, {2, 100000}}) {
    const auto start = std::chrono::steady_clock::now();
    BatchPipeline p(s, files, Options(2048, shuffle, threads));
    Batch b;
    int64_t rows = 0;
    while (p.Next(&b)) rows += b.rows;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(rows, 8 * 16000);
    std::printf("[ throughput ] threads=%d shuffle_buffer=%lld: %lld rows in %.3f s = %.0f rows/s\n", threads,
                static_cast<long long>(shuffle), static_cast<long long>(rows), seconds, rows / seconds);
  }
}

TEST(PipelineOptionsTest, RejectsBadOptions) {
  SchemaBuilder s;
  s.Labels({"label"});
  PipelineOptions o;
  o.batch_size = 0;
  EXPECT_THROW(BatchPipeline(s, {}, o), UserError);
  o.batch_size = 10;
  o.split = {SplitSpec::Part::kTrain, 0.7, 0.5};
  EXPECT_THROW(BatchPipeline(s, {}, o), UserError);
  o.split = {};
  BatchPipeline empty(s, {}, o);
  Batch b;
  EXPECT_FALSE(empty.Next(&b));
  EXPECT_EQ(b.rows, 0);
}

}  // namespace
}  // namespace shardrec::data
