#pragma once
// `shardrec launch --ps P --workers W CONFIG [--set ...] [--resume DIR]`: one training job on this
// machine. Starts P `shardrec ps` servers (free ports, a fresh random token shared through the
// environment, never the command line), waits until they listen, then W `shardrec train` workers
// that reach them. Every output line of a process is prefixed with its role and rank. SIGINT and
// SIGTERM are forwarded. When a process dies, the others are stopped and the launcher exits
// non-zero naming the process, its exit status and the last lines of its log; when every worker
// has finished, the servers are stopped (they flush) and the launcher exits 0.
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace shardrec::cli {

struct LaunchCommandOptions {
  std::string config_path;
  std::vector<std::string> sets;
  int num_ps = 1;
  int num_workers = 0;  // 0: one per GPU where there are GPUs, else 1
  std::string output_dir;
  std::string resume;
  double stop_grace_s = 10;  // SIGTERM to SIGKILL when stopping the job
};

CLI::App* AddLaunchCommand(CLI::App& app, LaunchCommandOptions* options);
int RunLaunchCommand(const LaunchCommandOptions& options);

}  // namespace shardrec::cli
