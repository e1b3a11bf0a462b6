#pragma once
// `shardrec prep-sessions`: a session click log (Diginetica, Yoochoose) to next-item CSV files
// the normal readers take (data/session_rows.h says what rows it writes).
//
//   shardrec prep-sessions --format diginetica|yoochoose --input FILE [--input FILE ...]
//                          --out DIR [--max-len 50] [--min-session-len 2] [--min-item-freq 1]
//
// Writes DIR/train.csv (every session's prefixes but the last) and DIR/test.csv (each session's
// last click), then prints what it kept.
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace shardrec::cli {

struct PrepSessionsOptions {
  std::string format;
  std::vector<std::string> inputs;
  std::string out_dir;
  int max_len = 50;
  int min_session_len = 2;
  int min_item_freq = 1;
};

// Registers the subcommand on `app`, parsing into *options (which must outlive app.parse).
CLI::App* AddPrepSessionsCommand(CLI::App& app, PrepSessionsOptions* options);

// Returns the exit code; throws shardrec::UserError / DataError for bad input (exit code 1).
int RunPrepSessions(const PrepSessionsOptions& options);

}  // namespace shardrec::cli
