#include "train/job_ps.h"

#include <filesystem>

#include "common/error.h"
#include "ps/auth_token.h"
#include "ps/remote_ps_client.h"
#include "train/progress.h"

namespace shardrec::train {

namespace fs = std::filesystem;

std::string EmbeddedPsDir(const config::Job& job, const std::string& run_dir) {
  const config::Ps& pc = job.ps();
  if (pc.memory_only() || pc.addresses_size() > 0) return "";
  return pc.has_data_dir() ? pc.data_dir() : (fs::path(run_dir) / "ps").string();
}

std::unique_ptr<ps::PsClient> OpenJobPs(const config::Job& job, const data::FeatureSchema& schema, const std::string& run_dir,
                                        bool fresh) {
  const config::Ps& pc = job.ps();
  if (pc.addresses_size() > 0) {  // remote shards (`shardrec ps`), one address per shard
    ps::RemotePsOptions ro;
    ro.token = ps::LoadPsToken(pc.token_file()).value;
    ro.rpc_timeout_s = pc.rpc_timeout_s();
    ro.max_attempts = pc.max_attempts();
    ro.connect_timeout_s = pc.connect_timeout_s();
    LogLine("parameter servers: " + std::to_string(pc.addresses_size()) + " remote shards");
    return std::make_unique<ps::RemotePsClient>(std::vector<std::string>(pc.addresses().begin(), pc.addresses().end()),
                                                schema.tables, ro);
  }
  ps::InProcessOptions o;
  o.num_shards = pc.num_shards();
  if (!pc.memory_only()) {
    o.data_dir = EmbeddedPsDir(job, run_dir);
    std::error_code ec;
    const bool has_rows = fs::exists(o.data_dir) && !fs::is_empty(o.data_dir, ec);
    if (fresh && has_rows) {
      if (pc.has_data_dir())
        throw UserError("ps.data_dir " + o.data_dir + " already holds parameter-server rows; remove it or name another folder");
      fs::remove_all(o.data_dir);
    }
    if (!fresh && !has_rows)
      throw UserError("no parameter-server rows in " + o.data_dir + " (is " + run_dir + " a finished run of this config?)");
    o.cache_bytes = pc.cache_bytes();
    o.sync_pushes = pc.sync_pushes();
    o.flush_log_bytes = pc.flush_log_bytes();
    // The trainer is the only client and dies with its shards: a crash loses the run's dense
    // state too, so per-push logging buys nothing here (checkpoints are the durability point).
    o.log_pushes = pc.sync_pushes();
  } else if (!fresh) {
    throw UserError("the job keeps its embedding rows in memory only (ps.memory_only): a finished run has none to read");
  }
  return ps::MakeInProcessPs(schema.tables, o);
}

}  // namespace shardrec::train
