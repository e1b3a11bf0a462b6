#include "cli/eval_command.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "common/error.h"
#include "config/config_loader.h"
#include "train/match_trainer.h"
#include "train/progress.h"

namespace shardrec::cli {

namespace fs = std::filesystem;

CLI::App* AddEvalCommand(CLI::App& app, EvalCommandOptions* o) {
  auto* cmd = app.add_subcommand("eval", "Retrieval metrics (Recall/Hit/NDCG/MRR@K) of a finished matching run");
  cmd->add_option("config", o->config_path, "the run's job config")->required();
  cmd->add_option("--run", o->run_dir, "the run's output folder (dense.pt, ps/)")->required();
  cmd->add_option("--split", o->split, "test | validation")->check(CLI::IsMember({"test", "validation"}));
  cmd->add_option("--set", o->sets, "override a config field: field.path=value (repeatable)");
  return cmd;
}

std::string MetricsToJson(const std::map<std::string, double>& metrics) {
  std::ostringstream s;
  s.precision(8);
  s << "{";
  bool first = true;
  for (const auto& [k, v] : metrics) {
    s << (first ? "\"" : ", \"") << k << "\": ";
    if (std::isfinite(v)) s << v; else s << "null";
    first = false;
  }
  s << "}";
  return s.str();
}

int RunEvalCommand(const EvalCommandOptions& o) {
  config::Job job = config::LoadJob(o.config_path, o.sets);
  if (!job.has_matching()) throw ConfigError("field matching: missing; `shardrec eval` ranks the catalogue for recall (matching) jobs");
  std::unique_ptr<train::MatchingRun> run = train::OpenMatchingRun(job, o.run_dir);
  const train::DataPart& part = o.split == "validation" ? run->sources.validation : run->sources.test;
  if (!part.present()) throw UserError("the job has no " + o.split + " data");
  train::MetricSet m = train::EvaluateRetrieval(*run->model, run->schema, part, run->ps.get(), *run->catalog, run->setup.retrieval);
  const std::string json = MetricsToJson(m);
  const std::string path = (fs::path(o.run_dir) / ("eval_" + o.split + ".json")).string();
  std::ofstream(path) << json << "\n";
  train::LogLine("eval (" + o.split + "): " + std::to_string(static_cast<int64_t>(m["queries"])) + " queries over " +
                 std::to_string(static_cast<int64_t>(m["items"])) + " items; written to " + path);
  std::cout << json << std::endl;
  return 0;
}

}  // namespace shardrec::cli
