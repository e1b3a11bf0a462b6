#pragma once
// `shardrec eval CONFIG --run DIR [--split test|validation] [--set path=value ...]`: retrieval
// evaluation of a finished matching run (its dense.pt and PS shards) on one split of the job's
// data, as training evaluates it (matching.retrieval: top_k, queries, backend...). Prints the
// metrics as JSON on stdout and writes them to DIR/eval_<split>.json.
#include <map>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace shardrec::cli {

struct EvalCommandOptions {
  std::string config_path;
  std::vector<std::string> sets;
  std::string run_dir;
  std::string split = "test";
};

CLI::App* AddEvalCommand(CLI::App& app, EvalCommandOptions* options);
int RunEvalCommand(const EvalCommandOptions& options);

// {"key": value, ...} of a metric map (non-finite values as null).
std::string MetricsToJson(const std::map<std::string, double>& metrics);

}  // namespace shardrec::cli
