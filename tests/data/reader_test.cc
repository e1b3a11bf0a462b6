// The reader against the real Torch-RecHub sample files (values checked by hand against the
// files), raw Criteo TSV, sequences and malformed lines.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "common/hash.h"
#include "data/pipeline.h"
#include "data_test_util.h"

namespace shardrec::data {
namespace {

using testing::CountLines;
using testing::ReadAll;
using testing::ReadResult;
using testing::Sample;
using testing::SchemaBuilder;
using testing::WriteFile;

int64_t H(std::string_view s) { return static_cast<int64_t>(HashValue(s)); }
std::vector<int64_t> Ids(std::initializer_list<std::string_view> values) {
  std::vector<int64_t> ids;
  for (std::string_view v : values) ids.push_back(H(v));
  return ids;
}

PipelineOptions InOrder() {
  PipelineOptions o;
  o.batch_size = 32;
  o.shuffle_buffer = 0;
  o.threads = 2;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Real sample files

TEST(ReaderSamplesTest, Criteo) {
  SHARDREC_REQUIRE_SAMPLES();
  SchemaBuilder s;
  s.Labels({"label"});
  for (int j = 1; j <= 13; ++j) {
    const std::string name = "I" + std::to_string(j);
    if (j == 3) {
      s.Dense(name, "", DenseTransform::kLog);
    } else if (j == 5) {
      s.Dense(name, "", DenseTransform::kMinMax, 0.f, 0.f, 4000.f);
    } else {
      s.Dense(name, "", DenseTransform::kNone, /*fill=*/-7.f);
    }
  }
  for (int f = 1; f <= 26; ++f) s.Sparse("C" + std::to_string(f));
  const std::string path = Sample("ranking/data/criteo/criteo_sample.csv");
  ReadResult r = ReadAll(s, {path}, InOrder());
  ASSERT_EQ(r.rows.size(), 115u);
  EXPECT_EQ(static_cast<int64_t>(r.rows.size()), CountLines(path) - 1);
  double positives = 0;
  for (const auto& row : r.rows) positives += row.labels[0];
  EXPECT_EQ(positives, 26);

  // Line 2: 0,0.0,0,104.0,27.0,1990.0,...,1.0,,27.0,05db9164,...,0e8585d2,,32c7478e,...,92c878de
  const auto& row0 = r.rows[0];
  EXPECT_EQ(row0.labels[0], 0.f);
  EXPECT_EQ(row0.dense[s.DenseIndex("I1")], 0.f);
  EXPECT_EQ(row0.dense[s.DenseIndex("I2")], 0.f);
  EXPECT_NEAR(row0.dense[s.DenseIndex("I3")], std::log(105.0), 1e-5);  // LOG: log(1 + 104)
  EXPECT_EQ(row0.dense[s.DenseIndex("I4")], 27.f);
  EXPECT_NEAR(row0.dense[s.DenseIndex("I5")], 1990.0 / 4000.0, 1e-6);   // MINMAX over [0, 4000]
  EXPECT_EQ(row0.dense[s.DenseIndex("I12")], -7.f);                    // empty -> fill
  EXPECT_EQ(row0.dense[s.DenseIndex("I13")], 27.f);
  EXPECT_EQ(row0.sparse[s.SparseIndex("C1")], Ids({"05db9164"}));
  EXPECT_EQ(row0.sparse[s.SparseIndex("C21")], Ids({"0e8585d2"}));
  EXPECT_EQ(row0.sparse[s.SparseIndex("C22")], Ids({""}));  // empty category
  EXPECT_EQ(row0.sparse[s.SparseIndex("C26")], Ids({"92c878de"}));
  // Line 3: I2 = -1, C6 empty.
  EXPECT_EQ(r.rows[1].dense[s.DenseIndex("I2")], -1.f);
  EXPECT_EQ(r.rows[1].sparse[s.SparseIndex("C6")], Ids({""}));
  EXPECT_EQ(r.rows[1].sparse[s.SparseIndex("C1")], Ids({"68fd1e64"}));
}

TEST(ReaderSamplesTest, AvazuThreeFilesInOrder) {
  SHARDREC_REQUIRE_SAMPLES();
  SchemaBuilder s;
  s.Labels({"label"});
  for (int f = 1; f <= 22; ++f) s.Sparse("feat_" + std::to_string(f));
  const std::vector<std::string> files = {Sample("ranking/data/avazu/train_sample.csv"),
                                          Sample("ranking/data/avazu/valid_sample.csv"),
                                          Sample("ranking/data/avazu/test_sample.csv")};
  for (const std::string& f : files) EXPECT_EQ(ReadAll(s, {f}, InOrder()).rows.size(), static_cast<size_t>(CountLines(f) - 1));
  ReadResult r = ReadAll(s, files, InOrder());
  ASSERT_EQ(r.rows.size(), 100u);  // 70 + 10 + 20
  // train line 4: 1,1,9,18,3582,...,1544189,1544259
  EXPECT_EQ(r.rows[2].labels[0], 1.f);
  EXPECT_EQ(r.rows[2].sparse[s.SparseIndex("feat_1")], Ids({"1"}));
  EXPECT_EQ(r.rows[2].sparse[s.SparseIndex("feat_21")], Ids({"1544189"}));
  EXPECT_EQ(r.rows[2].sparse[s.SparseIndex("feat_22")], Ids({"1544259"}));
  // valid line 2 comes right after the 70 train rows: 0,1,9,17,3581,...,1544259
  EXPECT_EQ(r.rows[70].sparse[s.SparseIndex("feat_3")], Ids({"17"}));
  EXPECT_EQ(r.rows[70].sparse[s.SparseIndex("feat_22")], Ids({"1544259"}));
}

TEST(ReaderSamplesTest, CensusIncomeColumnsWithSpaces) {
  SHARDREC_REQUIRE_SAMPLES();
  SchemaBuilder s;
  s.Labels({"income"}).Dense("age").Sparse("class of worker").Sparse("education").Dense("capital gains");
  for (const char* name : {"census_income_train_sample.csv", "census_income_val_sample.csv", "census_income_test_sample.csv"}) {
    const std::string path = Sample(std::string("ranking/data/census-income/") + name);
    EXPECT_EQ(static_cast<int64_t>(ReadAll(s, {path}, InOrder()).rows.size()), CountLines(path) - 1) << name;
  }
  ReadResult r = ReadAll(s, {Sample("ranking/data/census-income/census_income_train_sample.csv")}, InOrder());
  ASSERT_EQ(r.rows.size(), 80u);
  // 0.3333,1,43,26,12,... ,1,0  and  0.1444,3,0,0,10,...
  EXPECT_FLOAT_EQ(r.rows[0].dense[s.DenseIndex("age")], 0.3333f);
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("class of worker")], Ids({"1"}));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("education")], Ids({"12"}));
  EXPECT_EQ(r.rows[0].labels[0], 0.f);
  EXPECT_FLOAT_EQ(r.rows[1].dense[s.DenseIndex("age")], 0.1444f);
  EXPECT_EQ(r.rows[1].sparse[s.SparseIndex("class of worker")], Ids({"3"}));
}

TEST(ReaderSamplesTest, AliCcpTwoLabelsAndNoFinalNewline) {
  SHARDREC_REQUIRE_SAMPLES();
  SchemaBuilder s;
  s.Labels({"click", "purchase"}).Sparse("101").Sparse("205").Dense("D509").Dense("D702").Dense("D853");
  const std::string train = Sample("ranking/data/ali-ccp/ali_ccp_train_sample.csv");
  ReadResult r = ReadAll(s, {train}, InOrder());
  ASSERT_EQ(r.rows.size(), 100u);  // 101 lines, the last without '\n'
  EXPECT_EQ(static_cast<int64_t>(r.rows.size()), CountLines(train) - 1);
  double clicks = 0, purchases = 0;
  for (const auto& row : r.rows) {
    ASSERT_EQ(row.labels.size(), 2u);
    clicks += row.labels[0];
    purchases += row.labels[1];
  }
  EXPECT_EQ(clicks, 7);
  EXPECT_EQ(purchases, 1);
  // Line 4: 1,1,1,1,1,1,1,0,1,1,1,2,... ,0.5605,0.256,0.4626,0.344
  EXPECT_EQ(r.rows[2].labels, (std::vector<float>{1.f, 1.f}));
  EXPECT_EQ(r.rows[2].sparse[s.SparseIndex("205")], Ids({"2"}));
  EXPECT_FLOAT_EQ(r.rows[2].dense[s.DenseIndex("D853")], 0.344f);
  // The unterminated last line: 0,0,1,1,1,1,1,0,1,1,1,42,...,0.3508,0.1993,0.0,0.0
  EXPECT_EQ(r.rows.back().sparse[s.SparseIndex("205")], Ids({"42"}));
  EXPECT_FLOAT_EQ(r.rows.back().dense[s.DenseIndex("D509")], 0.1993f);
  EXPECT_EQ(r.rows.back().dense[s.DenseIndex("D702")], 0.f);
  EXPECT_EQ(r.rows.back().dense[s.DenseIndex("D853")], 0.f);
  for (const char* name : {"ali_ccp_val_sample.csv", "ali_ccp_test_sample.csv"}) {
    const std::string path = Sample(std::string("ranking/data/ali-ccp/") + name);
    EXPECT_EQ(ReadAll(s, {path}, InOrder()).rows.size(), 50u) << name;
  }
}

TEST(ReaderSamplesTest, AliExpressClickConversion) {
  SHARDREC_REQUIRE_SAMPLES();
  SchemaBuilder s;
  s.Labels({"click", "conversion"}).Sparse("categorical_1").Sparse("categorical_16").Dense("numerical_1");
  const std::string train = Sample("ranking/data/aliexpress/aliexpress_train_sample.csv");
  ReadResult r = ReadAll(s, {train}, InOrder());
  ASSERT_EQ(r.rows.size(), 100u);
  double clicks = 0, conversions = 0;
  for (const auto& row : r.rows) {
    clicks += row.labels[0];
    conversions += row.labels[1];
  }
  EXPECT_EQ(clicks, 60);
  EXPECT_EQ(conversions, 2);
  // Line 2: 81,9,0,0,0,9,4,25,0,0,0,0,0,0,0,1,0,0.0,...  ,1,0
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("categorical_1")], Ids({"9"}));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("categorical_16")], Ids({"0"}));
  EXPECT_EQ(r.rows[0].labels, (std::vector<float>{1.f, 0.f}));
  EXPECT_EQ(ReadAll(s, {Sample("ranking/data/aliexpress/aliexpress_test_sample.csv")}, InOrder()).rows.size(), 20u);
}

TEST(ReaderSamplesTest, AmazonElectronicsWithGroups) {
  SHARDREC_REQUIRE_SAMPLES();
  SchemaBuilder s;
  s.Labels({}).Group("user_id").Sparse("item_id").Sparse("cate_id").Dense("time");
  const std::string path = Sample("ranking/data/amazon-electronics/amazon_electronics_sample.csv");
  ReadResult r = ReadAll(s, {path}, InOrder());
  ASSERT_EQ(r.rows.size(), 100u);
  // Line 2: 0,13179,1400457600,584
  EXPECT_EQ(r.rows[0].group, HashValue("0"));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("item_id")], Ids({"13179"}));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("cate_id")], Ids({"584"}));
  EXPECT_EQ(r.rows[0].dense[s.DenseIndex("time")], static_cast<float>(1400457600.0));
  EXPECT_TRUE(r.rows[0].labels.empty());
}

TEST(ReaderSamplesTest, MovieLensQuotedTitles) {
  SHARDREC_REQUIRE_SAMPLES();
  SchemaBuilder s;
  s.Labels({"rating"}).Sparse("user_id").Sparse("movie_id").Sparse("title").Sequence("genres", "genres", 5).Sparse("gender").Sparse("zip");
  const std::string path = Sample("matching/data/ml-1m/ml-1m_sample.csv");
  ReadResult r = ReadAll(s, {path}, InOrder());
  ASSERT_EQ(r.rows.size(), 100u);
  EXPECT_EQ(static_cast<int64_t>(r.rows.size()), CountLines(path) - 1);
  // Line 6: 1,2355,5,978824291,"Bug's Life, A (1998)",Animation|Children's|Comedy,F,1,10,48067
  const auto& row = r.rows[4];
  EXPECT_EQ(row.labels[0], 5.f);
  EXPECT_EQ(row.sparse[s.SparseIndex("movie_id")], Ids({"2355"}));
  EXPECT_EQ(row.sparse[s.SparseIndex("title")], Ids({"Bug's Life, A (1998)"}));
  EXPECT_EQ(row.sparse[s.SparseIndex("genres")], Ids({"Animation", "Children's", "Comedy"}));
  EXPECT_EQ(row.sparse[s.SparseIndex("gender")], Ids({"F"}));
  EXPECT_EQ(row.sparse[s.SparseIndex("zip")], Ids({"48067"}));
  // Line 2: an unquoted title.
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("title")], Ids({"One Flew Over the Cuckoo's Nest (1975)"}));
}

TEST(ReaderSamplesTest, YidianNewsEmptyHeaderNameAndUtf8) {
  SHARDREC_REQUIRE_SAMPLES();
  SchemaBuilder s;
  s.Labels({"click"}).Dense("index").FromColumn("").Sparse("userId").Sparse("province").Sparse("city").Dense("age0");
  const std::string path = Sample("matching/data/yidian_news/yidian_news_sampled.csv");
  ReadResult r = ReadAll(s, {path}, InOrder());
  ASSERT_EQ(r.rows.size(), 1000u);
  // Line 2: 0,1000014754,463510256,...,0,DVC-AN20,Android,江西,南昌,0.006997,...
  EXPECT_EQ(r.rows[0].dense[s.DenseIndex("index")], 0.f);
  EXPECT_EQ(r.rows[1].dense[s.DenseIndex("index")], 1.f);
  EXPECT_EQ(r.rows[0].labels[0], 0.f);
  EXPECT_EQ(r.rows[1].labels[0], 1.f);
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("userId")], Ids({"1000014754"}));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("province")], Ids({"江西"}));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("city")], Ids({"南昌"}));
  EXPECT_FLOAT_EQ(r.rows[0].dense[s.DenseIndex("age0")], 0.006997f);
}

TEST(ReaderSamplesTest, DigineticaSemicolons) {
  SHARDREC_REQUIRE_SAMPLES();
  SchemaBuilder s;
  s.Labels({}).Group("sessionId").Sparse("userId").Sparse("itemId").Dense("timeframe");
  PipelineOptions o = InOrder();
  o.delimiter = ';';
  const std::string path = Sample("matching/data/session_based/diginetica/train-item-views-sample.csv");
  ReadResult r = ReadAll(s, {path}, o);
  ASSERT_EQ(r.rows.size(), 500u);
  // Line 2: 1;NA;81766;526309;2016-05-09
  EXPECT_EQ(r.rows[0].group, HashValue("1"));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("userId")], Ids({"NA"}));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("itemId")], Ids({"81766"}));
  EXPECT_EQ(r.rows[0].dense[s.DenseIndex("timeframe")], 526309.f);
}

TEST(ReaderSamplesTest, YoochooseHeaderlessWithColumnNames) {
  SHARDREC_REQUIRE_SAMPLES();
  SchemaBuilder s;
  s.Labels({}).Group("session_id").Sparse("item_id").Sparse("category").Sparse("timestamp");
  PipelineOptions o = InOrder();
  o.column_names = {"session_id", "timestamp", "item_id", "category"};
  const std::string path = Sample("matching/data/session_based/yoochoose/yoochoose-clicks-sample.dat");
  ReadResult r = ReadAll(s, {path}, o);
  ASSERT_EQ(r.rows.size(), 500u);
  EXPECT_EQ(static_cast<int64_t>(r.rows.size()), CountLines(path));  // no header line
  // Line 1: 1,2014-04-07T10:51:09.277Z,214536502,0
  EXPECT_EQ(r.rows[0].group, HashValue("1"));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("item_id")], Ids({"214536502"}));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("category")], Ids({"0"}));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("timestamp")], Ids({"2014-04-07T10:51:09.277Z"}));
}

TEST(ReaderSamplesTest, MissingColumnNamesFileAndFeature) {
  SHARDREC_REQUIRE_SAMPLES();
  const std::string path = Sample("ranking/data/amazon-electronics/amazon_electronics_sample.csv");
  SchemaBuilder s;
  s.Labels({}).Sparse("user").FromColumn("nope");
  try {
    BatchPipeline p(s, {path}, InOrder());
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": no column 'nope' for feature 'user'");
  }
  SchemaBuilder l;
  l.Labels({"label"}).Sparse("item_id");
  EXPECT_THROW(BatchPipeline(l, {path}, InOrder()), DataError);
  SchemaBuilder g;
  g.Labels({}).Group("uid").Sparse("item_id");
  EXPECT_THROW(BatchPipeline(g, {path}, InOrder()), DataError);
}

// ---------------------------------------------------------------------------------------------
// Hand-written files

std::string Tabs(const std::vector<std::string>& fields) {
  std::string s;
  for (size_t i = 0; i < fields.size(); ++i) s += (i ? "\t" : "") + fields[i];
  return s;
}

TEST(ReaderTest, RawCriteoTsv) {
  // label, I1..I13, C1..C26, no header.
  std::vector<std::string> a = {"1", "5", "", "3", "0", "1382", "4", "15", "2", "181", "1", "2", "", "2"};
  for (int f = 1; f <= 26; ++f) a.push_back(f == 3 ? "" : "c" + std::to_string(f));
  std::vector<std::string> b(40, "");
  b[0] = "0";
  b[2] = "-1";
  b[14] = "68fd1e64";
  const testing::ScopedTempDir tmp("criteo-tsv");
  const std::string& dir = tmp.path();
  const std::string path = dir + "/day_0.txt";
  WriteFile(path, Tabs(a) + "\n" + Tabs(b) + "\r\n" + Tabs(a) + "\n");
  SchemaBuilder s;
  s.Labels({"label"});
  for (int j = 1; j <= 13; ++j) s.Dense("I" + std::to_string(j), "", DenseTransform::kLog, /*fill=*/0.f);
  for (int f = 1; f <= 26; ++f) s.Sparse("C" + std::to_string(f));
  PipelineOptions o = InOrder();
  o.format = FileFormat::kCriteoTsv;
  ReadResult r = ReadAll(s, {path}, o);
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0].labels[0], 1.f);
  EXPECT_NEAR(r.rows[0].dense[s.DenseIndex("I1")], std::log(6.0), 1e-6);
  EXPECT_EQ(r.rows[0].dense[s.DenseIndex("I2")], 0.f);  // empty -> fill 0 -> log(1) = 0
  EXPECT_NEAR(r.rows[0].dense[s.DenseIndex("I5")], std::log(1383.0), 1e-5);
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("C1")], Ids({"c1"}));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("C3")], Ids({""}));
  EXPECT_EQ(r.rows[0].sparse[s.SparseIndex("C26")], Ids({"c26"}));
  EXPECT_EQ(r.rows[1].labels[0], 0.f);
  EXPECT_EQ(r.rows[1].dense[s.DenseIndex("I2")], 0.f);  // log(1 + max(-1, 0))
  EXPECT_EQ(r.rows[1].sparse[s.SparseIndex("C1")], Ids({"68fd1e64"}));
  EXPECT_EQ(r.rows[1].sparse[s.SparseIndex("C26")], Ids({""}));  // before the "\r\n"
  EXPECT_EQ(r.rows[2], r.rows[0]);

  // kTsv: tab separated with a header line.
  WriteFile(dir + "/h.tsv", "c\tlabel\nx,y\t1\n");
  SchemaBuilder t;
  t.Labels({"label"}).Sparse("c");
  o.format = FileFormat::kTsv;
  ReadResult tsv = ReadAll(t, {dir + "/h.tsv"}, o);
  ASSERT_EQ(tsv.rows.size(), 1u);
  EXPECT_EQ(tsv.rows[0].sparse[0], Ids({"x,y"}));
  EXPECT_EQ(tsv.rows[0].labels[0], 1.f);
}

TEST(ReaderTest, SequencesDropPaddingAndKeepTheMostRecent) {
  const testing::ScopedTempDir tmp("sequences");
  const std::string& dir = tmp.path();
  const std::string path = dir + "/seq.csv";
  WriteFile(path,
            "label,hist,tags\n"
            "1,1|2|0||3|4,a;b;c\n"
            "0,,\n"
            "1,7,x\n"
            "0,0|0,;;\n");
  SchemaBuilder s;
  s.Labels({"label"})
      .Sequence("hist", "hist", /*max_len=*/3, '|', {"0"})
      .Sequence("hist_raw", "hist", /*max_len=*/50, ';')
      .Sequence("tags", "tags", /*max_len=*/2, ';');
  ReadResult r = ReadAll(s, {path}, InOrder());
  ASSERT_EQ(r.rows.size(), 4u);
  const int hist = s.SparseIndex("hist"), raw = s.SparseIndex("hist_raw"), tags = s.SparseIndex("tags");
  EXPECT_EQ(r.rows[0].sparse[hist], Ids({"2", "3", "4"}));      // 1|2|0||3|4 -> 1,2,3,4 -> last 3
  EXPECT_EQ(r.rows[0].sparse[raw], Ids({"1|2|0||3|4"}));         // another separator: one token
  EXPECT_EQ(r.rows[0].sparse[tags], Ids({"b", "c"}));
  EXPECT_TRUE(r.rows[1].sparse[hist].empty());
  EXPECT_TRUE(r.rows[1].sparse[tags].empty());
  EXPECT_EQ(r.rows[2].sparse[hist], Ids({"7"}));
  EXPECT_TRUE(r.rows[3].sparse[hist].empty());  // only padding
  EXPECT_TRUE(r.rows[3].sparse[tags].empty());  // only empty tokens
}

TEST(ReaderTest, CrlfHeaderAndByteOrderMark) {
  const testing::ScopedTempDir tmp("crlf");
  const std::string path = tmp.path() + "/crlf.csv";
  WriteFile(path, "\xEF\xBB\xBFlabel,c\r\n1,a\r\n0,\r\n");
  SchemaBuilder s;
  s.Labels({"label"}).Sparse("c");
  ReadResult r = ReadAll(s, {path}, InOrder());
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].sparse[0], Ids({"a"}));
  EXPECT_EQ(r.rows[1].sparse[0], Ids({""}));
  EXPECT_EQ(r.rows[1].labels[0], 0.f);
}

TEST(ReaderTest, QuotedLineBreaksAcrossChunkBoundaries) {
  // About 2 MB of records whose quoted fields hold delimiters, quotes and line breaks, so that
  // chunk cuts land inside them; every record must come back whole, with line numbers intact.
  const testing::ScopedTempDir tmp("chunks");
  const std::string path = tmp.path() + "/quoted.csv";
  std::string text = "id,text,label\n";
  const int kRows = 30000;
  for (int i = 0; i < kRows; ++i) {
    text += std::to_string(i) + ",\"row " + std::to_string(i) + ", \"\"quoted\"\"\nsecond line " +
            std::string(static_cast<size_t>(i % 50), 'x') + "\"," + std::to_string(i % 2) + "\n";
  }
  text += "oops,\"last\",notanumber\n";  // line 2 + 2 * kRows
  WriteFile(path, text);
  SchemaBuilder s;
  s.Labels({"label"}).Dense("id").Sparse("text");
  for (int threads : {1, 3}) {
    PipelineOptions o = InOrder();
    o.threads = threads;
    o.batch_size = 1000;
    o.skip_bad_lines = true;
    ReadResult r = ReadAll(s, {path}, o);
    ASSERT_EQ(r.rows.size(), static_cast<size_t>(kRows));
    EXPECT_EQ(r.bad_lines, 1);
    for (int i = 0; i < kRows; i += 997) {
      EXPECT_EQ(r.rows[static_cast<size_t>(i)].dense[0], static_cast<float>(i));
      const std::string expected = "row " + std::to_string(i) + ", \"quoted\"\nsecond line " + std::string(static_cast<size_t>(i % 50), 'x');
      EXPECT_EQ(r.rows[static_cast<size_t>(i)].sparse[0], Ids({expected}));
    }
  }
  try {
    ReadAll(s, {path}, InOrder());
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), path + ":" + std::to_string(2 + 2 * kRows) +
                                         ": column 'id' (feature 'id'): cannot parse 'oops' as a number");
  }
}

// ---------------------------------------------------------------------------------------------
// Malformed lines

class BadLinesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = shardrec::testing::TempDir("bad-lines");
    path_ = dir_ + "/bad.csv";
    WriteFile(path_,
              "label,x,c\n"  // 1
              "1,1.5,a\n"    // 2
              "0,2.5,b\n"    // 3
              "1,3.5\n"      // 4: two fields
              "\n"           // 5: blank, ignored
              "0,abc,d\n"    // 6: x is not a number
              "zz,1,e\n"     // 7: the label is not a number
              "1,,f\n");     // 8: empty x -> fill
    schema_.Labels({"label"}).Dense("x", "", DenseTransform::kNone, /*fill=*/-1.f).Sparse("c");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, path_;
  SchemaBuilder schema_;
};

TEST_F(BadLinesTest, ErrorNamesFileAndLineAfterTheGoodRows) {
  PipelineOptions o = InOrder();
  o.batch_size = 1;
  BatchPipeline p(schema_, {path_}, o);
  Batch b;
  ASSERT_TRUE(p.Next(&b));
  ASSERT_TRUE(p.Next(&b));
  EXPECT_EQ(b.dense[0], 2.5f);
  try {
    p.Next(&b);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), path_ + ":4: expected 3 fields, found 2");
  }
  EXPECT_THROW(p.Next(&b), DataError);  // the error sticks
}

TEST_F(BadLinesTest, MessagesNameColumnAndValue) {
  PipelineOptions o = InOrder();
  o.skip_bad_lines = true;
  o.max_bad_lines = 1;
  try {
    ReadAll(schema_, {path_}, o);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path_ + ":6: column 'x' (feature 'x'): cannot parse 'abc' as a number"), std::string::npos) << msg;
    EXPECT_NE(msg.find("max_bad_lines=1"), std::string::npos) << msg;
  }
  o.max_bad_lines = 2;
  try {
    ReadAll(schema_, {path_}, o);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path_ + ":7: label column 'label': cannot parse 'zz' as a number"), std::string::npos) << msg;
  }
}

TEST_F(BadLinesTest, SkippingCountsAndContinues) {
  PipelineOptions o = InOrder();
  o.skip_bad_lines = true;
  o.max_bad_lines = 3;
  ReadResult r = ReadAll(schema_, {path_}, o);
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.bad_lines, 3);
  EXPECT_EQ(r.rows[0].dense[0], 1.5f);
  EXPECT_EQ(r.rows[1].dense[0], 2.5f);
  EXPECT_EQ(r.rows[2].dense[0], -1.f);
  EXPECT_EQ(r.rows[2].sparse[0], Ids({"f"}));
}

TEST(ReaderTest, UnterminatedQuoteIsABadLine) {
  const testing::ScopedTempDir tmp("quote");
  const std::string& dir = tmp.path();
  const std::string path = dir + "/q.csv";
  WriteFile(path, "label,t\n1,\"multi\nline\"\n0,\"open\n");
  SchemaBuilder s;
  s.Labels({"label"}).Sparse("t");
  try {
    ReadAll(s, {path}, InOrder());
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), path + ":4: unterminated quoted field");
  }
  PipelineOptions o = InOrder();
  o.skip_bad_lines = true;
  ReadResult r = ReadAll(s, {path}, o);
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0].sparse[0], Ids({"multi\nline"}));
  EXPECT_EQ(r.bad_lines, 1);
}

TEST(ReaderTest, MissingFileAndEmptyFile) {
  const testing::ScopedTempDir tmp("missing");
  const std::string& dir = tmp.path();
  SchemaBuilder s;
  s.Labels({"label"}).Sparse("c");
  try {
    BatchPipeline p(s, {dir + "/nope.csv"}, InOrder());
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/nope.csv: cannot open"), std::string::npos);
  }
  WriteFile(dir + "/empty.csv", "");
  EXPECT_THROW(BatchPipeline(s, {dir + "/empty.csv"}, InOrder()), DataError);
  WriteFile(dir + "/header.csv", "label,c\n");
  EXPECT_TRUE(ReadAll(s, {dir + "/header.csv"}, InOrder()).rows.empty());
}

}  // namespace
}  // namespace shardrec::data
