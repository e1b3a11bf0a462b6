// The `shardrec` binary: thin subcommands that parse arguments, build the objects and run them.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "cli/eval_command.h"
#include "cli/export_command.h"
#include "cli/launch_command.h"
#include "cli/match_train_command.h"
#include "cli/prep_sessions_command.h"
#include "cli/ps_command.h"
#include "cli/train_command.h"
#include "common/error.h"
#include "common/process_tuning.h"
#include "config/config_loader.h"
#include "data/generator.h"
#include "dist/accelerator.h"
#include "dist/rendezvous.h"
#include "train/trainer.h"

namespace {

namespace fs = std::filesystem;
using namespace shardrec;

int Info() {
  dist::AcceleratorInfo acc = dist::ProbeAccelerators();
  dist::ProcessIdentity id = dist::DetectIdentityFromEnvironment();
  std::cout << "shardrec (built " << __DATE__ << ")\n"
            << "cpu threads: " << std::thread::hardware_concurrency() << "\n"
            << "nccl backend: " << (acc.nccl_compiled ? "compiled, NCCL " + std::to_string(acc.nccl_version) : "not compiled")
            << "\ncuda devices: " << acc.cuda_devices << (acc.note.empty() ? "" : " (" + acc.note + ")") << "\n"
            << "process: rank " << id.rank << " of " << id.world_size << " (local rank " << id.local_rank << ", from "
            << id.source << ")\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "train") EnsurePassiveOpenMp(argv);
  TuneMalloc();
  CLI::App app{"ShardRec: recommender training with sharded embedding tables"};
  app.require_subcommand(1);

  std::string config_path;
  std::vector<std::string> sets;
  cli::TrainCommandOptions train_options;
  auto* train = app.add_subcommand(
      "train", "Train the model a config describes (alone: embedded PS shards; under launch/mpirun/srun: one rank)");
  train->add_option("config", train_options.config_path, "job config (protobuf text format)")->required();
  train->add_option("--set", train_options.sets, "override a config field: field.path=value (repeatable)");
  train->add_option("--output-dir", train_options.output_dir, "where metrics.json and weights go (default: runs/<name>)");
  train->add_option("--resume", train_options.resume, "continue from this checkpoint (or the newest one in this folder)");

  cli::LaunchCommandOptions launch_options;
  auto* launch = cli::AddLaunchCommand(app, &launch_options);

  auto* validate = app.add_subcommand("validate", "Check a config and print it with defaults resolved");
  validate->add_option("config", config_path, "job config")->required();
  validate->add_option("--set", sets, "override a config field: field.path=value (repeatable)");

  std::string kind;
  int64_t rows = 100000, vocab = 10000;
  uint64_t seed = 1;
  std::string out_dir;
  auto* gen = app.add_subcommand("gen-data", "Write deterministic synthetic data (train/validation/test CSV)");
  gen->add_option("kind", kind, "ctr | seq | match | mtl")->required();
  gen->add_option("--rows", rows, "rows in all (80/10/10 split)");
  gen->add_option("--seed", seed, "random seed");
  gen->add_option("--vocab", vocab, "distinct ids per categorical field");
  gen->add_option("--out", out_dir, "output directory")->required();

  auto* info = app.add_subcommand("info", "Print the build's versions, threads and accelerators");

  cli::PsCommandOptions ps_options;
  auto* ps_cmd = cli::AddPsCommand(app, &ps_options);
  cli::PrepSessionsOptions prep_sessions_options;
  auto* prep_sessions = cli::AddPrepSessionsCommand(app, &prep_sessions_options);
  cli::EvalCommandOptions eval_options;
  auto* eval = cli::AddEvalCommand(app, &eval_options);
  cli::ExportCommandOptions export_options;
  auto* export_cmd = cli::AddExportCommand(app, &export_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (*train && cli::IsMatchingJob(train_options.config_path, train_options.sets))
      return cli::RunMatchTrainCommand(train_options);
    if (*train) return cli::RunTrainCommand(train_options);
    if (*eval) return cli::RunEvalCommand(eval_options);
    if (*export_cmd) return cli::RunExportCommand(export_options);
    if (*launch) return cli::RunLaunchCommand(launch_options);
    if (*validate) {
      config::Job job = config::LoadJob(config_path, sets);
      std::cout << job.DebugString();
      std::cerr << config_path << ": ok" << std::endl;
      return 0;
    }
    if (*info) return Info();
    if (*ps_cmd) return cli::RunPsCommand(ps_options);
    if (*prep_sessions) return cli::RunPrepSessions(prep_sessions_options);
    if (*gen) {
      data::GeneratorOptions g;
      g.kind = data::ParseSyntheticKind(kind);
      g.rows = rows;
      g.seed = seed;
      g.vocab_size = vocab;
      for (const auto& p : data::GenerateData(g, out_dir)) std::cout << p << "\n";
      return 0;
    }
  } catch (const ConfigError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 2;
  } catch (const UserError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  } catch (const std::logic_error& e) {  // a bug of ours, not something the user can fix
    std::cerr << "internal error: " << e.what() << std::endl;
    return 1;
  } catch (const std::exception& e) {  // I/O, RocksDB, an unreachable server...
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
