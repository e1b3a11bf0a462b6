// The `shardrec` binary: thin subcommands that parse arguments, build the objects and run them.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "cli/ps_command.h"
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

std::string DefaultOutputDir(const config::Job& job, const std::string& config_path) {
  if (job.has_output_dir()) return job.output_dir();
  std::string name = job.name().empty() ? fs::path(config_path).stem().string() : job.name();
  return (fs::path("runs") / name).string();
}

int Train(const std::string& path, const std::vector<std::string>& sets, const std::string& output_dir_flag) {
  config::Job job = config::LoadJob(path, sets);
  const std::string out = output_dir_flag.empty() ? DefaultOutputDir(job, path) : output_dir_flag;
  train::Trainer trainer(job, out);
  train::TrainReport r = trainer.Run();
  auto get = [](const train::MetricSet& m, const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? std::string("-") : std::to_string(it->second);
  };
  std::cout << "shardrec train: " << (job.name().empty() ? path : job.name()) << " | epochs " << r.epochs.size()
            << " (best " << r.best_epoch << ") | validation auc " << get(r.validation, "auc") << " logloss "
            << get(r.validation, "logloss") << " | test auc " << get(r.test, "auc") << " | "
            << static_cast<int64_t>(r.train_samples_per_sec) << " samples/s (step "
            << static_cast<int64_t>(r.step_samples_per_sec) << ") | " << (fs::path(out) / "metrics.json").string()
            << std::endl;
  return 0;
}

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

  std::string config_path, output_dir;
  std::vector<std::string> sets;
  auto* train = app.add_subcommand("train", "Train the model a config describes (single process, embedded PS shards)");
  train->add_option("config", config_path, "job config (protobuf text format)")->required();
  train->add_option("--set", sets, "override a config field: field.path=value (repeatable)");
  train->add_option("--output-dir", output_dir, "where metrics.json and weights go (default: runs/<name>)");

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (*train) return Train(config_path, sets, output_dir);
    if (*validate) {
      config::Job job = config::LoadJob(config_path, sets);
      std::cout << job.DebugString();
      std::cerr << config_path << ": ok" << std::endl;
      return 0;
    }
    if (*info) return Info();
    if (*ps_cmd) return cli::RunPsCommand(ps_options);
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
