#pragma once
// One parameter-server shard served over gRPC (proto/shardrec/ps.proto): a ShardStore (RocksDB
// rows, row cache, push log) behind the ParameterServer service. `shardrec ps` runs one; tests
// run them in-process. gRPC stays behind the pimpl.
//
// A push is acknowledged once the store has logged and applied it, so an acknowledged push
// survives kill -9 of the server (and a machine crash with sync_pushes). Retried pushes are
// recognised by (client_id, request_seq) and acknowledged without being applied again, also
// after a restart: the store logs the pair with the push and persists each client's last number.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ps/shard_store.h"
#include "ps/table_spec.h"

namespace shardrec::ps {

struct ShardServerOptions {
  int shard_id = 0;
  int num_shards = 1;
  // Address to listen on: 127.0.0.1 (loopback only) unless told otherwise, e.g. 0.0.0.0 or an
  // interface's address. IPv6 addresses may be given with or without brackets.
  std::string bind_address = "127.0.0.1";
  int port = 0;  // 0: a free port (see port())
  // Shared secret; empty: calls need no authorization (see ps/auth_token.h).
  std::string token;
  // gRPC send and receive limit (gRPC's default, 4 MB, is far too small for bulk rows).
  int64_t max_message_bytes = int64_t{256} << 20;
  // Pull/Push calls with more ids are refused (INVALID_ARGUMENT).
  int64_t max_ids_per_call = int64_t{1} << 22;
  // Clients whose last applied request_seq is remembered; the least recently seen is forgotten
  // beyond this (its retries would then be applied again).
  int64_t max_tracked_clients = 65536;
};

class ShardServer {
 public:
  // Opens the shard's store (ShardStore(tables, store_options): replays its push log) and starts
  // serving. With store_options.dir set, the folder is marked with shard_id/num_shards
  // (ps-shard.identity) and a folder marked for another shard is refused (shardrec::UserError),
  // as is one written for other tables. std::runtime_error when the address cannot be bound.
  ShardServer(std::vector<TableSpec> tables, ShardStoreOptions store_options, ShardServerOptions options);
  // Shutdown() with the default grace, then closes the store (which flushes it).
  ~ShardServer();
  ShardServer(const ShardServer&) = delete;
  ShardServer& operator=(const ShardServer&) = delete;

  int port() const;
  std::string address() const;  // "<bind_address>:<port>"

  // Stops taking calls; calls in progress get up to `grace_seconds` to finish, then are
  // cancelled; then the store is flushed. Idempotent, callable from any thread.
  void Shutdown(double grace_seconds = 5);
  // Blocks until Shutdown() has finished.
  void Wait();

  ShardStore& store();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardrec::ps
