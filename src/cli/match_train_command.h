#pragma once
// `shardrec train CONFIG` for a job with a `matching` block: the matching trainer
// (train/match_trainer.h) in this process, embedded or remote PS shards. main.cc dispatches here.
#include <string>
#include <vector>

#include "cli/train_command.h"

namespace shardrec::cli {

// Whether the config (with its --set overrides) has a `matching` block.
bool IsMatchingJob(const std::string& config_path, const std::vector<std::string>& sets);

int RunMatchTrainCommand(const TrainCommandOptions& options);

}  // namespace shardrec::cli
