#pragma once
// The PsClient of remote shard servers (`shardrec ps`, ShardServer): ids are routed to shards by
// the same function as the in-process PS (ps/routing.h), each call sends one request per shard
// that has ids, to all shards in parallel, and puts the rows back in the caller's order.
//
// On construction each shard is asked to Describe itself; a server that is another shard (or
// another shard count), or serves other tables (name, dim, optimizer, any hyper-parameter), is
// refused with a std::runtime_error naming the shard, its address and what differs.
//
// Every call has a deadline; UNAVAILABLE and DEADLINE_EXCEEDED are retried with exponential
// backoff. Pushes are retried safely: each carries this client's id and a request number, and a
// shard applies each number once, across server restarts too (see ShardServer).
// When the retries are spent: std::runtime_error "PS shard 1 at 127.0.0.1:5555 is unreachable:
// ...". Other errors (a refused request, a wrong token) are thrown at once, with the server's
// message. A Push that throws may have been applied by some shards and not others.
//
// Thread-safe: pulls run concurrently; pushes are sent one at a time (in call order), which is
// what makes request numbers safe.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ps/ps_client.h"

namespace shardrec::ps {

struct RemotePsOptions {
  // Sent as `authorization: Bearer <token>` when non-empty (see ps/auth_token.h).
  std::string token;
  // Construction: Describe is tried until this many seconds have passed (servers may still be
  // starting or replaying their logs).
  double connect_timeout_s = 30;
  // Deadline of each try of Pull, Push, Stats.
  double rpc_timeout_s = 30;
  // Deadline of a Checkpoint (flushes and copies the shard). Not retried after its deadline.
  double checkpoint_timeout_s = 1800;
  // Tries of a call (the first included) on UNAVAILABLE / DEADLINE_EXCEEDED, with backoff
  // initial_backoff_s, doubling up to max_backoff_s (each randomised by -25..0 %).
  int max_attempts = 6;
  double initial_backoff_s = 0.1;
  double max_backoff_s = 2;
  // gRPC send and receive limit; the servers' own limit (from Describe) also bounds requests.
  int64_t max_message_bytes = int64_t{256} << 20;
  // Names this client's pushes for the servers' duplicate check. Empty: a random one (the usual
  // choice; two clients must never share one).
  std::string client_id;
};

// A shard's counters and rates, as its server reports them.
struct RemoteShardStats {
  ShardStats store;
  double uptime_s = 0;
  double rate_window_s = 0;
  double pull_rows_per_s = 0, push_rows_per_s = 0;
  double pull_calls_per_s = 0, push_calls_per_s = 0;
  int64_t duplicate_pushes = 0;
  int64_t rejected_calls = 0;
};

class RemotePsClient final : public PsClient {
 public:
  // addresses[i] ("host:port") serves shard i of addresses.size(); `tables` as the servers' config
  // builds them (data::BuildSchema(job).tables).
  RemotePsClient(std::vector<std::string> addresses, std::vector<TableSpec> tables, RemotePsOptions options = {});
  ~RemotePsClient() override;
  RemotePsClient(const RemotePsClient&) = delete;
  RemotePsClient& operator=(const RemotePsClient&) = delete;

  const std::vector<TableSpec>& tables() const override;
  void Pull(int table, const int64_t* ids, int64_t n, float* out, bool read_only = false) override;
  void Push(int table, const int64_t* ids, int64_t n, const float* grads) override;
  // Pushes are acknowledged once applied and logged: nothing is ever in flight after Push.
  void Flush() override {}
  int64_t num_rows() const override;
  // Each shard i writes dir/shard-<i> on its server's filesystem; a relative dir is made absolute
  // against this process's working directory first.
  void Checkpoint(const std::string& dir) override;
  std::vector<ShardStats> Stats() const override;

  std::vector<RemoteShardStats> RemoteStats() const;
  const std::vector<std::string>& addresses() const;
  // Whether every shard keeps its rows on disk (false: some shard is memory-only).
  bool durable() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardrec::ps
