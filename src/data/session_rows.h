#pragma once
// Session click logs turned into next-item rows for the sequence recall models (GRU4Rec, NARM,
// SASRec trained on sessions; the NARM paper's and Torch-RecHub's session-based setup):
//
//   Diginetica  train-item-views.csv: header "sessionId;userId;itemId;timeframe;eventdate", ';'
//               separated; clicks of a session ordered by (eventdate, timeframe).
//   Yoochoose   yoochoose-clicks.dat: no header, "session,timestamp,item,category" (timestamp
//               ISO 8601, e.g. 2014-04-07T10:51:09.277Z); clicks ordered by timestamp.
//
// Sessions shorter than min_session_len clicks are dropped, then items with fewer than
// min_item_freq clicks, then the sessions that became too short (the reference preprocessing's
// order). A session of n clicks c_1..c_n (in time order) gives
//   train rows: history c_1..c_{t-1} -> next item c_t, for t = 2..n-1;
//   test row:   history c_1..c_{n-1} -> c_n (the last click is held out);
// each history capped at its max_len most recent clicks. Rows come session by session, sessions
// ordered by their first click's time (Diginetica: its day; ties: session id), so the files read
// in time order.
//
// The CSV files have the header "session_id,hist_item_id,item_id,label": the history '|'
// separated, most recent last (a SEQUENCE feature with pooling CONCAT, shared_with item_id), and
// label 1 (every row is an observed next click; the matching trainer draws the negatives).
// Differences from the reference preprocessing: it splits by the last days (test_days) instead
// of the last click of each session, and caps prefixes to their oldest max_len items.
#include <cstdint>
#include <string>
#include <vector>

namespace shardrec::data {

enum class ClickLogFormat { kDiginetica, kYoochoose };

// "diginetica" | "yoochoose"; throws UserError for anything else.
ClickLogFormat ParseClickLogFormat(const std::string& name);

struct SessionOptions {
  ClickLogFormat format = ClickLogFormat::kDiginetica;
  int max_len = 50;          // history cap (most recent clicks kept)
  int min_session_len = 2;   // >= 2: a session needs a next click
  int min_item_freq = 1;     // the reference uses 5 on the full data sets
};

struct SessionRow {
  int64_t session = 0;
  std::vector<int64_t> history;  // oldest first
  int64_t item = 0;
};

struct SessionRows {
  std::vector<SessionRow> train, test;
  int64_t clicks_read = 0;
  int64_t clicks_kept = 0;
  int64_t sessions_kept = 0;
  int64_t items_kept = 0;  // distinct items of the kept clicks
};

// Reads the click logs (in order) and builds the rows. Throws UserError for an unreadable file,
// DataError ("FILE:LINE: what") for a malformed line, a bad option.
SessionRows BuildSessionRows(const std::vector<std::string>& paths, const SessionOptions& options);

// Writes rows as CSV (header above). Throws UserError when the file cannot be written.
void WriteSessionCsv(const std::vector<SessionRow>& rows, const std::string& path);

}  // namespace shardrec::data
