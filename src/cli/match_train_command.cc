#include "cli/match_train_command.h"

#include <filesystem>
#include <iostream>

#include "common/error.h"
#include "config/config_loader.h"
#include "train/match_trainer.h"

namespace shardrec::cli {

namespace fs = std::filesystem;

bool IsMatchingJob(const std::string& config_path, const std::vector<std::string>& sets) {
  return config::LoadJob(config_path, sets).has_matching();
}

int RunMatchTrainCommand(const TrainCommandOptions& options) {
  config::Job job = config::LoadJob(options.config_path, options.sets);
  if (!options.resume.empty()) throw UserError("--resume: matching training does not write checkpoints yet; train again");
  const std::string out = options.output_dir.empty() ? DefaultOutputDir(job.name(), job.output_dir(), options.config_path) : options.output_dir;
  train::MatchTrainer trainer(job, out);
  train::TrainReport r = trainer.Run();
  const std::string metric = job.matching().retrieval().metric();
  auto get = [](const train::MetricSet& m, const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? std::string("-") : std::to_string(it->second);
  };
  std::cout << "shardrec train: " << (job.name().empty() ? options.config_path : job.name()) << " | epochs " << r.epochs.size()
            << " (best " << r.best_epoch << ") | validation " << metric << " " << get(r.validation, metric) << " | test "
            << metric << " " << get(r.test, metric) << " ndcg@10 " << get(r.test, "ndcg@10") << " | "
            << static_cast<int64_t>(r.train_samples_per_sec) << " samples/s (step " << static_cast<int64_t>(r.step_samples_per_sec)
            << ") | " << (fs::path(out) / "metrics.json").string() << std::endl;
  return 0;
}

}  // namespace shardrec::cli
