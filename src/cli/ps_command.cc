#include "cli/ps_command.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "common/error.h"
#include "config/config_loader.h"
#include "data/feature_schema.h"
#include "ps/auth_token.h"
#include "ps/shard_server.h"
#include "ps/shard_store.h"

namespace shardrec::cli {
namespace {

namespace fs = std::filesystem;

// SIGTERM/SIGINT reach whichever thread the kernel picks (threads that libraries started before
// this command cannot be made to block them), so a handler turns them into a byte on a pipe
// that the waiter thread reads. A second signal during the shutdown ends the process at once:
// acknowledged pushes are in the push log, so that loses nothing acknowledged.
int g_signal_pipe[2] = {-1, -1};
std::atomic<int> g_signals{0};

extern "C" void OnStopSignal(int sig) {
  if (g_signals.fetch_add(1) > 0) _exit(128 + sig);
  const int saved = errno;
  const char c = static_cast<char>(sig);
  [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &c, 1);
  errno = saved;
}

void InstallStopHandlers() {
  if (::pipe(g_signal_pipe) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Blocks until a stop signal; returns it.
int WaitForStopSignal() {
  char c = 0;
  while (::read(g_signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
  }
  return static_cast<unsigned char>(c);
}

bool Loopback(const std::string& host) {
  return host.rfind("127.", 0) == 0 || host == "::1" || host == "[::1]" || host == "localhost";
}

}  // namespace

CLI::App* AddPsCommand(CLI::App& app, PsCommandOptions* o) {
  auto* ps = app.add_subcommand("ps", "Serve one parameter-server shard over gRPC (until SIGTERM/SIGINT)");
  ps->add_option("--config", o->config_path, "the job config the workers use (tables, dims, optimizers, ps section)")
      ->required();
  ps->add_option("--set", o->sets, "override a config field: field.path=value (repeatable)");
  ps->add_option("--shard-id", o->shard_id, "which shard this server holds, 0 .. num_shards-1")->required();
  ps->add_option("--num-shards", o->num_shards,
                 "shards in all (default: the config's ps.addresses count, else ps.num_shards)");
  ps->add_option("--data-dir", o->data_dir, "this shard's folder (RocksDB + push log); default <ps.data_dir>/shard-<i>");
  ps->add_option("--port", o->port, "port to listen on (0: a free one; the line 'listening on ADDR:PORT' tells which)")
      ->required();
  ps->add_option("--bind", o->bind, "address to listen on (default 127.0.0.1: this machine only)");
  ps->add_option("--token-file", o->token_file,
                 "file holding the shared token (default: $SHARDREC_PS_TOKEN; none: no authorization)");
  ps->add_option("--cache-bytes", o->cache_bytes, "bytes of rows kept in memory (default ps.cache_bytes / num_shards)");
  ps->add_option("--restore-from", o->restore_from,
                 "replace the data dir with this shard checkpoint first (a shard-<i> folder of a checkpoint)");
  ps->add_option("--shutdown-grace", o->shutdown_grace_s, "seconds calls in progress get to finish on SIGTERM/SIGINT");
  return ps;
}

std::unique_ptr<ps::ShardServer> StartShardServer(const config::Job& job, const PsCommandOptions& o, int n,
                                                  std::string* data_dir) {
  const config::Ps& pc = job.ps();
  std::vector<ps::TableSpec> tables = data::BuildSchema(job).tables;
  if (tables.empty()) throw ConfigError(o.config_path + ": the config has no embedding tables: nothing to serve");

  const ps::PsToken token = ps::LoadPsToken(o.token_file);

  ps::ShardStoreOptions store;
  if (!o.data_dir.empty()) {
    store.dir = o.data_dir;
  } else if (pc.has_data_dir()) {
    store.dir = (fs::path(pc.data_dir()) / ("shard-" + std::to_string(o.shard_id))).string();
  } else if (!pc.memory_only()) {
    throw ConfigError("shardrec ps needs --data-dir (or ps.data_dir in " + o.config_path +
                      ", or ps.memory_only: true to keep rows in memory only)");
  }
  if (!o.restore_from.empty()) {
    if (store.dir.empty()) throw ConfigError("--restore-from needs a data dir (the shard is restored into it)");
    if (!fs::exists(o.restore_from)) throw UserError("--restore-from " + o.restore_from + ": no such checkpoint");
    ps::RestoreShardCheckpoint(o.restore_from, store.dir);
    std::cerr << "shardrec ps: restored " << store.dir << " from " << o.restore_from << std::endl;
  }
  store.cache_bytes = o.cache_bytes > 0 ? o.cache_bytes : std::max<int64_t>(1, pc.cache_bytes() / n);
  store.sync_pushes = pc.sync_pushes();
  store.flush_log_bytes = pc.flush_log_bytes();
  store.log_pushes = true;  // an acknowledged push must survive this process

  ps::ShardServerOptions so;
  so.shard_id = o.shard_id;
  so.num_shards = n;
  so.bind_address = o.bind;
  so.port = o.port;
  so.token = token.value;

  std::unique_ptr<ps::ShardServer> server;
  try {
    server = std::make_unique<ps::ShardServer>(tables, store, so);
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {
    // A folder of other tables, a busy port: the user's to fix, not an internal error. (The
    // messages name the shard or its folder.)
    throw UserError(e.what());
  }

  std::cerr << "shardrec ps: shard " << o.shard_id << " of " << n << " | " << tables.size() << " table(s) | "
            << (store.dir.empty() ? std::string("memory only (acknowledged pushes die with this process)")
                                  : "data dir " + store.dir)
            << " | " << server->store().num_rows() << " rows | cache " << store.cache_bytes << " bytes"
            << (store.sync_pushes ? " | sync_pushes" : "") << " | token: " << token.source << std::endl;
  if (!token.warning.empty()) std::cerr << "warning: " << token.warning << std::endl;
  if (token.value.empty() && !Loopback(o.bind))
    std::cerr << "warning: listening on " << o.bind << " without a token: whoever reaches this port can read and "
              << "change the rows (set --token-file or $" << ps::kPsTokenEnv << ")" << std::endl;
  if (data_dir) *data_dir = store.dir;
  return server;
}

int RunPsCommand(const PsCommandOptions& o) {
  InstallStopHandlers();  // from here on, SIGTERM/SIGINT mean a graceful shutdown

  config::Job job = config::LoadJob(o.config_path, o.sets);
  const config::Ps& pc = job.ps();
  int n = o.num_shards;
  if (n == 0) n = pc.addresses_size() > 0 ? pc.addresses_size() : pc.num_shards();
  if (n < 1) throw ConfigError("--num-shards " + std::to_string(n) + ": must be >= 1");
  if (pc.addresses_size() > 0 && n != pc.addresses_size())
    throw ConfigError(o.config_path + ": field ps.addresses: lists " + std::to_string(pc.addresses_size()) +
                      " shard(s), but --num-shards is " + std::to_string(n));
  if (o.shard_id < 0 || o.shard_id >= n)
    throw ConfigError("--shard-id " + std::to_string(o.shard_id) + ": must be in [0, " + std::to_string(n) +
                      ") (num_shards " + std::to_string(n) + ")");
  if (o.port < 0 || o.port > 65535) throw ConfigError("--port " + std::to_string(o.port) + ": must be in [0, 65535]");
  if (o.cache_bytes < 0) throw ConfigError("--cache-bytes: must be > 0");
  if (!(o.shutdown_grace_s >= 0)) throw ConfigError("--shutdown-grace: must be >= 0");

  std::string data_dir;
  std::unique_ptr<ps::ShardServer> server = StartShardServer(job, o, n, &data_dir);
  std::cout << "listening on " << server->address() << std::endl;

  std::exception_ptr shutdown_error;
  std::thread waiter([&] {
    const int sig = WaitForStopSignal();
    std::cerr << "shardrec ps: " << strsignal(sig) << ": shutting down (grace " << o.shutdown_grace_s << " s)" << std::endl;
    try {
      server->Shutdown(o.shutdown_grace_s);
    } catch (...) {
      shutdown_error = std::current_exception();
    }
  });
  server->Wait();
  waiter.join();
  if (shutdown_error) std::rethrow_exception(shutdown_error);
  std::cerr << "shardrec ps: shard " << o.shard_id << " stopped, " << server->store().num_rows() << " rows"
            << (data_dir.empty() ? "" : " flushed to " + data_dir) << std::endl;
  return 0;
}

}  // namespace shardrec::cli
