#pragma once
// `shardrec train CONFIG`: one process of a training job. What it does depends on how it was
// started:
//   - alone: the whole job, with in-process PS shards (or the remote ones in ps.addresses);
//   - by `shardrec launch` (SHARDREC_RANK/SHARDREC_WORLD_SIZE set): one data-parallel worker,
//     with the launcher's PS addresses and a gloo rendezvous folder;
//   - by mpirun, srun or torchrun with N > 1 processes: ranks 0..dist.num_ps-1 serve one PS shard
//     each, the others are workers; the PS addresses are exchanged at start (through MPI where
//     the job runs under MPI, else through a file store in dist.rendezvous_dir).
#include <string>
#include <vector>

namespace shardrec::cli {

struct TrainCommandOptions {
  std::string config_path;
  std::vector<std::string> sets;
  std::string output_dir;  // empty: the config's, else runs/<name>
  std::string resume;      // a checkpoint folder or a folder of checkpoints
};

int RunTrainCommand(const TrainCommandOptions& options);

// runs/<job name> unless the config names an output_dir.
std::string DefaultOutputDir(const std::string& job_name, const std::string& configured, const std::string& config_path);

}  // namespace shardrec::cli
