// Session click logs to next-item rows (data/session_rows.h) on the real Torch-RecHub samples,
// and `prep-sessions`' files read back by the normal reader. Expected counts were worked out
// from the sample files independently of this code: Diginetica 500 clicks in 94 sessions, 27 of
// them single clicks, leave 473 clicks in 67 sessions: 473 - 2 * 67 = 339 train rows (n - 2 per
// session) and 67 test rows; Yoochoose 500 clicks in 125 sessions, 4 single, leave 496 clicks in
// 121 sessions: 254 train and 121 test rows.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli/prep_sessions_command.h"
#include "common/error.h"
#include "common/hash.h"
#include "data/pipeline.h"
#include "data/session_rows.h"
#include "data_test_util.h"

namespace shardrec::data {
namespace {

using testing::ReadAll;
using testing::Sample;
using testing::SchemaBuilder;
using testing::ScopedTempDir;
using testing::WriteFile;

const char* kDiginetica = "matching/data/session_based/diginetica/train-item-views-sample.csv";
const char* kYoochoose = "matching/data/session_based/yoochoose/yoochoose-clicks-sample.dat";

SessionRows Build(const std::string& sample, ClickLogFormat format, int max_len = 50, int min_item_freq = 1) {
  SessionOptions o;
  o.format = format;
  o.max_len = max_len;
  o.min_item_freq = min_item_freq;
  return BuildSessionRows({Sample(sample)}, o);
}

const SessionRow* Find(const std::vector<SessionRow>& rows, int64_t session, size_t history_len) {
  for (const SessionRow& r : rows)
    if (r.session == session && r.history.size() == history_len) return &r;
  return nullptr;
}

TEST(SessionRowsTest, DigineticaSampleCounts) {
  SHARDREC_REQUIRE_SAMPLES();
  SessionRows r = Build(kDiginetica, ClickLogFormat::kDiginetica);
  EXPECT_EQ(r.clicks_read, 500);  // the header line is not a click
  EXPECT_EQ(r.clicks_kept, 473);
  EXPECT_EQ(r.sessions_kept, 67);
  EXPECT_EQ(r.items_kept, 374);
  EXPECT_EQ(r.train.size(), 339u);
  EXPECT_EQ(r.test.size(), 67u);
}

// Session 1 has 10 clicks on 2016-05-09, listed out of time order in the file; by timeframe:
// 75848 9654, 173912 33043, 243569 32118, 329870 12352, 390072 35077, 487369 36118,
// 526309 81766, 991416 129055, 1031018 31331, 1112408 32627.
TEST(SessionRowsTest, DigineticaSessionOrderedByTimeframe) {
  SHARDREC_REQUIRE_SAMPLES();
  SessionRows r = Build(kDiginetica, ClickLogFormat::kDiginetica);
  const std::vector<int64_t> ordered = {9654, 33043, 32118, 12352, 35077, 36118, 81766, 129055, 31331, 32627};
  const SessionRow* test = Find(r.test, 1, 9);
  ASSERT_NE(test, nullptr);
  EXPECT_EQ(test->history, std::vector<int64_t>(ordered.begin(), ordered.end() - 1));
  EXPECT_EQ(test->item, 32627);
  int train_rows = 0;
  for (const SessionRow& row : r.train) {
    if (row.session != 1) continue;
    ++train_rows;
    const size_t t = row.history.size();  // the row predicts click t + 1 from clicks 1..t
    ASSERT_GE(t, 1u);
    ASSERT_LE(t, 8u);
    EXPECT_EQ(row.history, std::vector<int64_t>(ordered.begin(), ordered.begin() + static_cast<long>(t)));
    EXPECT_EQ(row.item, ordered[t]);
  }
  EXPECT_EQ(train_rows, 8);
  // Capped histories keep the most recent clicks.
  SessionRows capped = Build(kDiginetica, ClickLogFormat::kDiginetica, /*max_len=*/3);
  const SessionRow* last = Find(capped.test, 1, 3);
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->history, (std::vector<int64_t>{81766, 129055, 31331}));
  EXPECT_EQ(capped.train.size(), 339u);
}

// Sessions come in time order: the earliest day (2016-03-21) holds sessions 104, 105, 106; the
// last session starts on the latest day.
TEST(SessionRowsTest, DigineticaSessionsInTimeOrder) {
  SHARDREC_REQUIRE_SAMPLES();
  SessionRows r = Build(kDiginetica, ClickLogFormat::kDiginetica);
  ASSERT_GE(r.test.size(), 3u);
  EXPECT_EQ(r.test[0].session, 104);
  EXPECT_EQ(r.test[1].session, 105);
  EXPECT_EQ(r.test[2].session, 106);
  EXPECT_EQ(r.test.back().session, 96);
  // Session 104's rows: [10858] -> 10691 first, its test row last in its block.
  EXPECT_EQ(r.train[0].session, 104);
  EXPECT_EQ(r.train[0].history, (std::vector<int64_t>{10858}));
  EXPECT_EQ(r.train[0].item, 10691);
  EXPECT_EQ(r.test[0].history, (std::vector<int64_t>{10858, 10691, 33404, 10858, 10691}));
  EXPECT_EQ(r.test[0].item, 10691);
}

TEST(SessionRowsTest, MinItemFrequencyThenSessionLengthAgain) {
  SHARDREC_REQUIRE_SAMPLES();
  SessionRows d = Build(kDiginetica, ClickLogFormat::kDiginetica, 50, /*min_item_freq=*/2);
  EXPECT_EQ(d.clicks_kept, 157);
  EXPECT_EQ(d.sessions_kept, 39);
  EXPECT_EQ(d.items_kept, 63);
  EXPECT_EQ(d.train.size(), 79u);
  EXPECT_EQ(d.test.size(), 39u);
  SessionRows y = Build(kYoochoose, ClickLogFormat::kYoochoose, 50, 2);
  EXPECT_EQ(y.clicks_kept, 270);
  EXPECT_EQ(y.sessions_kept, 72);
  EXPECT_EQ(y.train.size(), 126u);
  EXPECT_EQ(y.test.size(), 72u);
}

// Session 1: 10:51:09.277 214536502, 10:54:09.868 214536500, 10:54:46.998 214536506,
// 10:57:00.306 214577561.
TEST(SessionRowsTest, YoochooseSample) {
  SHARDREC_REQUIRE_SAMPLES();
  SessionRows r = Build(kYoochoose, ClickLogFormat::kYoochoose);
  EXPECT_EQ(r.clicks_read, 500);  // no header
  EXPECT_EQ(r.clicks_kept, 496);
  EXPECT_EQ(r.sessions_kept, 121);
  EXPECT_EQ(r.items_kept, 311);
  EXPECT_EQ(r.train.size(), 254u);
  EXPECT_EQ(r.test.size(), 121u);
  const SessionRow* test = Find(r.test, 1, 3);
  ASSERT_NE(test, nullptr);
  EXPECT_EQ(test->history, (std::vector<int64_t>{214536502, 214536500, 214536506}));
  EXPECT_EQ(test->item, 214577561);
  const SessionRow* first = Find(r.train, 1, 1);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->item, 214536500);
  const SessionRow* second = Find(r.train, 1, 2);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->item, 214536506);
  // The earliest session starts the files (the first click of session 18 is the sample's earliest).
  EXPECT_EQ(r.test[0].session, 18);
  EXPECT_EQ(r.train[0].session, 54);  // session 18 has 2 clicks: a test row only
}

TEST(SessionRowsTest, MalformedLinesNameFileAndLine) {
  ScopedTempDir dir("session-rows-bad");
  const std::string d = std::string(dir) + "/d.csv";
  WriteFile(d, "sessionId;userId;itemId;timeframe;eventdate\n1;NA;5;10;2016-05-09\n1;NA;x;11;2016-05-09\n");
  try {
    BuildSessionRows({d}, SessionOptions{});
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(d + ":3: itemId is not an integer"), std::string::npos) << e.what();
  }
  const std::string y = std::string(dir) + "/y.dat";
  WriteFile(y, "1,2014-04-07T10:51:09.277Z,5,0\n2,2014-04-07 10:51,6,0\n");
  SessionOptions o;
  o.format = ClickLogFormat::kYoochoose;
  try {
    BuildSessionRows({y}, o);
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(y + ":2: timestamp is not ISO 8601"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ParseClickLogFormat("ml-1m"), UserError);
  o.min_session_len = 1;
  EXPECT_THROW(BuildSessionRows({y}, o), UserError);
}

// prep-sessions writes files the normal CSV reader takes: a history sequence, the next item.
TEST(SessionRowsTest, PrepSessionsFilesReadBack) {
  SHARDREC_REQUIRE_SAMPLES();
  ScopedTempDir dir("prep-sessions");
  cli::PrepSessionsOptions o;
  o.format = "yoochoose";
  o.inputs = {Sample(kYoochoose)};
  o.out_dir = std::string(dir) + "/yoochoose";
  o.max_len = 19;
  ASSERT_EQ(cli::RunPrepSessions(o), 0);
  SchemaBuilder s;
  s.Labels({"label"}).Sparse("session_id").Sequence("hist_item_id", "hist_item_id", 19).Sparse("item_id");
  PipelineOptions p;
  p.batch_size = 64;
  p.shuffle_buffer = 0;
  testing::ReadResult train = ReadAll(s, {o.out_dir + "/train.csv"}, p);
  testing::ReadResult test = ReadAll(s, {o.out_dir + "/test.csv"}, p);
  ASSERT_EQ(train.rows.size(), 254u);
  ASSERT_EQ(test.rows.size(), 121u);
  auto h = [](const char* v) { return static_cast<int64_t>(HashValue(v)); };
  // The first test row: session 18, [214577732] -> 214577732.
  const testing::Row& first = test.rows[0];
  EXPECT_EQ(first.labels, std::vector<float>{1.f});
  EXPECT_EQ(first.sparse[s.SparseIndex("session_id")], std::vector<int64_t>{h("18")});
  EXPECT_EQ(first.sparse[s.SparseIndex("hist_item_id")], std::vector<int64_t>{h("214577732")});
  EXPECT_EQ(first.sparse[s.SparseIndex("item_id")], std::vector<int64_t>{h("214577732")});
}

}  // namespace
}  // namespace shardrec::data
