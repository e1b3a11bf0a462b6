#pragma once
// `shardrec ps`: serves one parameter-server shard over gRPC until SIGTERM/SIGINT.
//
//   shardrec ps --config CONFIG --shard-id I --port P [--num-shards N] [--data-dir DIR]
//               [--bind ADDR] [--token-file F] [--cache-bytes B] [--shutdown-grace S]
//               [--set path=value ...]
//
// The tables come from the job config the workers use (config::LoadJob, data::BuildSchema), so
// names, dims and optimizers agree; sync_pushes, flush_log_bytes and the cache budget from its
// `ps` section. Prints "listening on ADDR:PORT" on stdout once it serves (--port 0: a free port).
#include <cstdint>
#include <string>
#include <vector>

#include <memory>

namespace CLI {
class App;
}
namespace shardrec::config {
class Job;
}
namespace shardrec::ps {
class ShardServer;
}

namespace shardrec::cli {

struct PsCommandOptions {
  std::string config_path;
  std::vector<std::string> sets;
  int shard_id = -1;
  int num_shards = 0;    // 0: the config's (ps.addresses' count when given, else ps.num_shards)
  std::string data_dir;  // this shard's folder; default <ps.data_dir>/shard-<i>
  std::string bind = "127.0.0.1";
  int port = -1;
  std::string token_file;   // else $SHARDREC_PS_TOKEN, else no token
  int64_t cache_bytes = 0;  // 0: ps.cache_bytes / num_shards
  double shutdown_grace_s = 5;
  // A shard checkpoint (PsClient::Checkpoint wrote it as <dir>/shard-<i>) that replaces the data
  // dir's contents before the server opens it.
  std::string restore_from;
};

// Registers the `ps` subcommand on `app`, parsing into *options (which must outlive app.parse).
CLI::App* AddPsCommand(CLI::App& app, PsCommandOptions* options);

// Runs the server until SIGTERM or SIGINT; returns the exit code. Throws shardrec::ConfigError
// for a bad config or bad flags (exit code 2), shardrec::UserError for other things a user can
// fix (a data dir of another shard or other tables, a bad token file, a busy port).
int RunPsCommand(const PsCommandOptions& options);

// Opens shard `options.shard_id` of `num_shards` for `job` (restoring it first when asked) and
// starts serving it; logs the start-up line on stderr; *data_dir receives its folder (empty:
// memory only). What `shardrec ps` and the PS ranks of an mpirun/srun job run. Throws
// ConfigError / UserError as RunPsCommand.
std::unique_ptr<ps::ShardServer> StartShardServer(const config::Job& job, const PsCommandOptions& options,
                                                  int num_shards, std::string* data_dir = nullptr);

}  // namespace shardrec::cli
