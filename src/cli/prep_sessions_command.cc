#include "cli/prep_sessions_command.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "data/session_rows.h"

namespace shardrec::cli {

CLI::App* AddPrepSessionsCommand(CLI::App& app, PrepSessionsOptions* o) {
  auto* cmd = app.add_subcommand("prep-sessions",
                                 "Turn a session click log (Diginetica, Yoochoose) into next-item train/test CSV files");
  cmd->add_option("--format", o->format, "diginetica (sessionId;userId;itemId;timeframe;eventdate) | yoochoose "
                                         "(session,timestamp,item,category, no header)")
      ->required();
  cmd->add_option("--input", o->inputs, "click log file (repeatable; read in order)")->required();
  cmd->add_option("--out", o->out_dir, "output directory for train.csv and test.csv")->required();
  cmd->add_option("--max-len", o->max_len, "history cap: the most recent clicks kept (default 50)");
  cmd->add_option("--min-session-len", o->min_session_len, "drop sessions with fewer clicks (default 2)");
  cmd->add_option("--min-item-freq", o->min_item_freq, "drop items with fewer clicks (default 1; the reference: 5)");
  return cmd;
}

int RunPrepSessions(const PrepSessionsOptions& o) {
  data::SessionOptions options;
  options.format = data::ParseClickLogFormat(o.format);
  options.max_len = o.max_len;
  options.min_session_len = o.min_session_len;
  options.min_item_freq = o.min_item_freq;
  data::SessionRows rows = data::BuildSessionRows(o.inputs, options);
  std::filesystem::create_directories(o.out_dir);
  const std::string train = (std::filesystem::path(o.out_dir) / "train.csv").string();
  const std::string test = (std::filesystem::path(o.out_dir) / "test.csv").string();
  data::WriteSessionCsv(rows.train, train);
  data::WriteSessionCsv(rows.test, test);
  std::cout << "clicks " << rows.clicks_read << " read, " << rows.clicks_kept << " kept | sessions " << rows.sessions_kept
            << " | items " << rows.items_kept << "\n"
            << train << ": " << rows.train.size() << " rows\n"
            << test << ": " << rows.test.size() << " rows" << std::endl;
  return 0;
}

}  // namespace shardrec::cli
