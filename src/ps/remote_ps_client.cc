// RemotePsClient: routes ids to shard servers, fans each call out to them in parallel (gRPC's
// callback API: every shard's request is in flight at once, the caller waits for all), retries
// transient failures, and reassembles rows in the caller's order.
#include "ps/remote_ps_client.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "ps/auth_token.h"
#include "ps/routing.h"
#include "ps/service_common.h"
#include "shardrec/ps.grpc.pb.h"

namespace shardrec::ps {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Stub = ParameterServer::Stub;

const char* CodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    default: return "UNKNOWN_CODE";
  }
}

std::string Describe(const grpc::Status& s) {
  std::string m = CodeName(s.error_code());
  if (!s.error_message().empty()) m += ": " + s.error_message();
  return m;
}

std::string Seconds(double s) {
  std::ostringstream o;
  o.precision(s < 10 ? 2 : 3);
  o << s << " s";
  return o.str();
}

std::string RandomClientId() {
  unsigned char bytes[16] = {};
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  if (!urandom.read(reinterpret_cast<char*>(bytes), sizeof bytes)) {
    std::random_device rd;
    for (auto& b : bytes) b = static_cast<unsigned char>(rd());
  }
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = 0;
  std::string id = std::string(host) + ":" + std::to_string(::getpid()) + ":";
  static const char* hex = "0123456789abcdef";
  for (unsigned char b : bytes) id += hex[b >> 4], id += hex[b & 15];
  return id;
}

// One kind of RPC, for the fan-out below.
struct PullRpc {
  using Req = PullRequest;
  using Rep = PullReply;
  static void Call(Stub* s, grpc::ClientContext* c, const Req* q, Rep* r, std::function<void(grpc::Status)> f) {
    s->async()->Pull(c, q, r, std::move(f));
  }
  static grpc::Status CallSync(Stub* s, grpc::ClientContext* c, const Req& q, Rep* r) { return s->Pull(c, q, r); }
};
struct PushRpc {
  using Req = PushRequest;
  using Rep = PushReply;
  static void Call(Stub* s, grpc::ClientContext* c, const Req* q, Rep* r, std::function<void(grpc::Status)> f) {
    s->async()->Push(c, q, r, std::move(f));
  }
  static grpc::Status CallSync(Stub* s, grpc::ClientContext* c, const Req& q, Rep* r) { return s->Push(c, q, r); }
};
struct DescribeRpc {
  using Req = DescribeRequest;
  using Rep = DescribeReply;
  static void Call(Stub* s, grpc::ClientContext* c, const Req* q, Rep* r, std::function<void(grpc::Status)> f) {
    s->async()->Describe(c, q, r, std::move(f));
  }
  static grpc::Status CallSync(Stub* s, grpc::ClientContext* c, const Req& q, Rep* r) { return s->Describe(c, q, r); }
};
struct StatsRpc {
  using Req = StatsRequest;
  using Rep = StatsReply;
  static void Call(Stub* s, grpc::ClientContext* c, const Req* q, Rep* r, std::function<void(grpc::Status)> f) {
    s->async()->Stats(c, q, r, std::move(f));
  }
  static grpc::Status CallSync(Stub* s, grpc::ClientContext* c, const Req& q, Rep* r) { return s->Stats(c, q, r); }
};
struct CheckpointRpc {
  using Req = CheckpointRequest;
  using Rep = CheckpointReply;
  static void Call(Stub* s, grpc::ClientContext* c, const Req* q, Rep* r, std::function<void(grpc::Status)> f) {
    s->async()->Checkpoint(c, q, r, std::move(f));
  }
  static grpc::Status CallSync(Stub* s, grpc::ClientContext* c, const Req& q, Rep* r) { return s->Checkpoint(c, q, r); }
};

// Counts down the calls of one round; the waiter returns once every callback has run.
class Latch {
 public:
  explicit Latch(int n) : left_(n) {}
  void Done() {
    std::lock_guard<std::mutex> l(mu_);
    if (--left_ == 0) cv_.notify_all();  // under the lock: the waiter may destroy us right after
  }
  void Wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return left_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int left_;
};

// How long a call may keep trying.
struct Budget {
  int max_attempts;
  double max_seconds;     // over all tries and backoff
  double try_timeout_s;   // deadline of each try
  bool retry_deadline;    // retry DEADLINE_EXCEEDED too (not for non-idempotent calls)
};

// Per-thread routing buffers, reused across calls (a thread is in one call at a time).

}  // namespace

struct RemotePsClient::Impl {
  struct Shard {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<Stub> stub;
    int64_t max_ids_per_call = std::numeric_limits<int64_t>::max();
    int64_t max_message_bytes = kDefaultPsMessageBytes;
    bool durable = false;
  };

  std::vector<TableSpec> specs;
  RemotePsOptions opt;
  std::vector<std::string> addresses;
  std::vector<Shard> shards;
  std::string bearer;  // "Bearer <token>", or empty

  std::mutex push_mu;  // pushes go one at a time: request_seq order is send order
  uint64_t next_seq = 0;

  std::string Where(int s) const { return "PS shard " + std::to_string(s) + " at " + shards[s].address; }

  std::unique_ptr<grpc::ClientContext> Context(double timeout_s) const {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        std::chrono::duration<double>(std::max(timeout_s, 1e-3))));
    if (!bearer.empty()) c->AddMetadata("authorization", bearer);
    return c;
  }

  // CANCELLED: what a server that is shutting down answers to calls in progress; like
  // UNAVAILABLE, a restarted server may take the retry (pushes are deduplicated).
  static bool Transient(const grpc::Status& s, bool retry_deadline) {
    return s.error_code() == grpc::StatusCode::UNAVAILABLE || s.error_code() == grpc::StatusCode::CANCELLED ||
           (retry_deadline && s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  }

  double Backoff(int attempt) const {
    thread_local std::mt19937 rng(std::random_device{}());
    const double b = std::min(opt.max_backoff_s, opt.initial_backoff_s * std::pow(2.0, attempt - 1));
    return b * std::uniform_real_distribution<double>(0.75, 1.0)(rng);
  }

  // Sends reqs[s] to every shard s of `targets` at once and waits for all; retries the transient
  // failures within `budget`. reps[s] holds shard s's reply afterwards. `what` names the call in
  // errors ("Pull of table 'C1'").
  template <typename Rpc>
  void Fanout(const std::string& what, const std::vector<int>& targets, const std::vector<typename Rpc::Req>& reqs,
              std::vector<typename Rpc::Rep>& reps, const Budget& budget) const {
    const Clock::time_point t0 = Clock::now();
    std::vector<int> pending = targets;
    std::vector<grpc::Status> status(shards.size());
    for (int attempt = 1;; ++attempt) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
      const double try_timeout = std::min(budget.try_timeout_s, std::max(budget.max_seconds - elapsed, 1e-3));
      if (pending.size() == 1) {
        // One shard: a blocking call on this thread (no hand-off to gRPC's callback threads).
        const int s = pending[0];
        auto ctx = Context(try_timeout);
        status[s] = Rpc::CallSync(shards[s].stub.get(), ctx.get(), reqs[s], &reps[s]);
      } else {
        std::vector<std::unique_ptr<grpc::ClientContext>> ctx(pending.size());
        Latch latch(static_cast<int>(pending.size()));
        for (size_t k = 0; k < pending.size(); ++k) {
          const int s = pending[k];
          ctx[k] = Context(try_timeout);
          Rpc::Call(shards[s].stub.get(), ctx[k].get(), &reqs[s], &reps[s], [&latch, &status, s](grpc::Status st) {
            status[s] = std::move(st);
            latch.Done();
          });
        }
        latch.Wait();
      }
      std::vector<int> again;
      for (int s : pending) {
        const grpc::Status& st = status[s];
        if (st.ok()) continue;
        if (!Transient(st, budget.retry_deadline)) {
          std::string hint;
          if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED)
            hint = " (servers and clients must use the same token: the servers' --token-file or $" +
                   std::string(kPsTokenEnv) + ")";
          throw std::runtime_error(Where(s) + " refused " + what + ": " + Describe(st) + hint);
        }
        again.push_back(s);
      }
      if (again.empty()) return;
      const double spent = std::chrono::duration<double>(Clock::now() - t0).count();
      const double wait = Backoff(attempt);
      if (attempt >= budget.max_attempts || spent + wait >= budget.max_seconds) {
        std::string msg = Where(again[0]) + " is unreachable: " + Describe(status[again[0]]) + " (" + what + ": " +
                          std::to_string(attempt) + (attempt == 1 ? " try" : " tries") + " in " + Seconds(spent) + ")";
        for (size_t k = 1; k < again.size(); ++k) msg += "; " + Where(again[k]) + " too: " + Describe(status[again[k]]);
        throw std::runtime_error(msg);
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(wait));
      for (int s : again) reps[s].Clear();
      pending = std::move(again);
    }
  }

  Budget CallBudget() const { return Budget{opt.max_attempts, std::numeric_limits<double>::infinity(), opt.rpc_timeout_s, true}; }

  std::vector<int> AllShards() const {
    std::vector<int> all(shards.size());
    for (size_t s = 0; s < all.size(); ++s) all[s] = static_cast<int>(s);
    return all;
  }

  void CheckTable(int table, const char* what) const {
    if (table < 0 || table >= static_cast<int>(specs.size()))
      throw std::out_of_range(std::string("remote PS ") + what + ": table index " + std::to_string(table) +
                              " out of range [0, " + std::to_string(specs.size()) + ")");
  }

  // Groups ids[0, n) by shard (stable counting sort), as the in-process PS does.
  const ShardRoute& Route(int table, const int64_t* ids, int64_t n) const {
    thread_local ShardRoute r;
    RouteByShard(table, ids, n, static_cast<uint32_t>(shards.size()), &r);
    return r;
  }

  void CheckSize(int s, int table, int64_t count, const char* what) const {
    const int64_t bytes = count * specs[table].dim * static_cast<int64_t>(sizeof(float));
    if (count > shards[s].max_ids_per_call || bytes + 1024 > std::min(shards[s].max_message_bytes, opt.max_message_bytes))
      throw std::invalid_argument(std::string("remote PS ") + what + " of table '" + specs[table].name + "': " +
                                  std::to_string(count) + " ids for " + Where(s) + " exceed its limits (" +
                                  std::to_string(shards[s].max_ids_per_call) + " ids, " +
                                  std::to_string(std::min(shards[s].max_message_bytes, opt.max_message_bytes)) +
                                  " bytes per message); split the call");
  }

  void Connect() {
    const int n = static_cast<int>(shards.size());
    std::vector<DescribeRequest> reqs(n);
    std::vector<DescribeReply> reps(n);
    Fanout<DescribeRpc>("Describe (connecting)", AllShards(), reqs, reps,
                        Budget{std::numeric_limits<int>::max(), opt.connect_timeout_s,
                               std::min(opt.rpc_timeout_s, opt.connect_timeout_s), true});
    for (int s = 0; s < n; ++s) {
      const DescribeReply& d = reps[s];
      if (d.shard_id() != s || d.num_shards() != n)
        throw std::runtime_error(Where(s) + " is shard " + std::to_string(d.shard_id()) + " of " +
                                 std::to_string(d.num_shards()) + " (its --shard-id/--num-shards), but this client expects shard " +
                                 std::to_string(s) + " of " + std::to_string(n) +
                                 ": list every shard's address, in shard-id order");
      if (d.tables_size() != static_cast<int>(specs.size()))
        throw std::runtime_error(Where(s) + " serves " + std::to_string(d.tables_size()) + " table(s), this client's config has " +
                                 std::to_string(specs.size()) + ": start the servers with the workers' config");
      for (int t = 0; t < d.tables_size(); ++t) {
        const TableInfo& ti = d.tables(t);
        const TableSpec& mine = specs[t];
        std::string diff;
        if (ti.name() != mine.name) {
          diff = "is '" + ti.name() + "' there, '" + mine.name + "' here";
        } else if (ti.dim() != mine.dim) {
          diff = "has dim " + std::to_string(ti.dim()) + " there, " + std::to_string(mine.dim) + " here";
        } else if (ti.optimizer() != OptimizerName(mine.optimizer.kind)) {
          diff = "has optimizer " + ti.optimizer() + " there, " + OptimizerName(mine.optimizer.kind) + " here";
        } else if (ti.fingerprint() != TableFingerprint(mine)) {
          diff = "has other initializer or optimizer settings there than here";
        }
        if (!diff.empty())
          throw std::runtime_error(Where(s) + ": table " + std::to_string(t) + " ('" + mine.name + "') " + diff +
                                   ": start the servers with the workers' config");
      }
      shards[s].max_ids_per_call = d.max_ids_per_call() > 0 ? d.max_ids_per_call() : shards[s].max_ids_per_call;
      shards[s].max_message_bytes = d.max_message_bytes() > 0 ? d.max_message_bytes() : shards[s].max_message_bytes;
      shards[s].durable = d.durable();
    }
  }
};

RemotePsClient::RemotePsClient(std::vector<std::string> addresses, std::vector<TableSpec> tables, RemotePsOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.specs = std::move(tables);
  m.opt = std::move(options);
  m.addresses = std::move(addresses);
  if (m.addresses.empty()) throw std::invalid_argument("remote PS: no shard addresses");
  for (const TableSpec& t : m.specs)
    if (t.dim < 1) throw std::invalid_argument("remote PS: table '" + t.name + "': dim must be >= 1");
  if (m.opt.max_attempts < 1) throw std::invalid_argument("remote PS: max_attempts must be >= 1");
  if (!(m.opt.rpc_timeout_s > 0) || !(m.opt.connect_timeout_s > 0) || !(m.opt.checkpoint_timeout_s > 0))
    throw std::invalid_argument("remote PS: timeouts must be > 0");
  if (m.opt.client_id.empty()) m.opt.client_id = RandomClientId();
  if (!m.opt.token.empty()) m.bearer = BearerHeader(m.opt.token);

  grpc::ChannelArguments args;
  const int limit = static_cast<int>(std::min<int64_t>(m.opt.max_message_bytes, INT32_MAX));
  args.SetMaxReceiveMessageSize(limit);
  args.SetMaxSendMessageSize(limit);
  // Reconnect soon after a server comes back (gRPC's default backoff grows to 120 s), and let
  // this class do the retrying.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // Own connections (not shared with another client of this process to the same server).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  for (const std::string& a : m.addresses) {
    if (a.empty()) throw std::invalid_argument("remote PS: an empty shard address");
    Impl::Shard sh;
    sh.address = a;
    sh.channel = grpc::CreateCustomChannel(a, grpc::InsecureChannelCredentials(), args);
    sh.stub = ParameterServer::NewStub(sh.channel);
    m.shards.push_back(std::move(sh));
  }
  m.Connect();
}

RemotePsClient::~RemotePsClient() = default;

const std::vector<TableSpec>& RemotePsClient::tables() const { return impl_->specs; }

const std::vector<std::string>& RemotePsClient::addresses() const { return impl_->addresses; }

bool RemotePsClient::durable() const {
  for (const auto& s : impl_->shards)
    if (!s.durable) return false;
  return true;
}

void RemotePsClient::Pull(int table, const int64_t* ids, int64_t n, float* out, bool read_only) {
  const Impl& m = *impl_;
  m.CheckTable(table, "Pull");
  if (n <= 0) return;
  const TableSpec& spec = m.specs[table];
  const int dim = spec.dim;
  const ShardRoute& r = m.Route(table, ids, n);
  const int num_shards = static_cast<int>(m.shards.size());
  std::vector<PullRequest> reqs(num_shards);
  std::vector<PullReply> reps(num_shards);
  std::vector<int> targets;
  for (int s = 0; s < num_shards; ++s) {
    const int64_t b = r.begin[s], count = r.begin[s + 1] - b;
    if (count == 0) continue;
    m.CheckSize(s, table, count, "Pull");
    targets.push_back(s);
    PullRequest& q = reqs[s];
    q.mutable_table()->set_index(table);
    q.mutable_table()->set_name(spec.name);
    q.set_read_only(read_only);
    std::string* bytes = q.mutable_ids();
    bytes->resize(static_cast<size_t>(count) * sizeof(int64_t));
    char* p = bytes->data();
    for (int64_t k = 0; k < count; ++k) std::memcpy(p + k * sizeof(int64_t), &ids[r.positions[b + k]], sizeof(int64_t));
  }
  m.Fanout<PullRpc>("Pull of table '" + spec.name + "'", targets, reqs, reps, m.CallBudget());
  const size_t row_bytes = sizeof(float) * dim;
  for (int s : targets) {
    const int64_t b = r.begin[s], count = r.begin[s + 1] - b;
    const std::string& rows = reps[s].rows();
    if (rows.size() != static_cast<size_t>(count) * row_bytes)
      throw std::runtime_error(m.Where(s) + " answered a Pull of " + std::to_string(count) + " rows of table '" +
                               spec.name + "' with " + std::to_string(rows.size()) + " bytes, expected " +
                               std::to_string(count * row_bytes));
    const char* p = rows.data();
    for (int64_t k = 0; k < count; ++k) std::memcpy(out + r.positions[b + k] * dim, p + k * row_bytes, row_bytes);
  }
}

void RemotePsClient::Push(int table, const int64_t* ids, int64_t n, const float* grads) {
  Impl& m = *impl_;
  m.CheckTable(table, "Push");
  if (n <= 0) return;
  const TableSpec& spec = m.specs[table];
  const int dim = spec.dim;
  const size_t row_bytes = sizeof(float) * dim;
  const ShardRoute& r = m.Route(table, ids, n);
  const int num_shards = static_cast<int>(m.shards.size());
  std::vector<PushRequest> reqs(num_shards);
  std::vector<PushReply> reps(num_shards);
  std::vector<int> targets;
  for (int s = 0; s < num_shards; ++s) {
    const int64_t b = r.begin[s], count = r.begin[s + 1] - b;
    if (count == 0) continue;
    m.CheckSize(s, table, count, "Push");
    targets.push_back(s);
    PushRequest& q = reqs[s];
    q.mutable_table()->set_index(table);
    q.mutable_table()->set_name(spec.name);
    q.set_client_id(m.opt.client_id);
    std::string* id_bytes = q.mutable_ids();
    std::string* grad_bytes = q.mutable_grads();
    id_bytes->resize(static_cast<size_t>(count) * sizeof(int64_t));
    grad_bytes->resize(static_cast<size_t>(count) * row_bytes);
    char* pi = id_bytes->data();
    char* pg = grad_bytes->data();
    for (int64_t k = 0; k < count; ++k) {
      const int64_t i = r.positions[b + k];
      std::memcpy(pi + k * sizeof(int64_t), &ids[i], sizeof(int64_t));
      std::memcpy(pg + k * row_bytes, grads + i * dim, row_bytes);
    }
  }
  std::lock_guard<std::mutex> l(m.push_mu);
  const uint64_t seq = ++m.next_seq;
  for (int s : targets) reqs[s].set_request_seq(seq);
  m.Fanout<PushRpc>("Push of table '" + spec.name + "'", targets, reqs, reps, m.CallBudget());
}

std::vector<RemoteShardStats> RemotePsClient::RemoteStats() const {
  const Impl& m = *impl_;
  const int n = static_cast<int>(m.shards.size());
  std::vector<StatsRequest> reqs(n);
  std::vector<StatsReply> reps(n);
  m.Fanout<StatsRpc>("Stats", m.AllShards(), reqs, reps, m.CallBudget());
  std::vector<RemoteShardStats> out(n);
  for (int s = 0; s < n; ++s) {
    const StatsReply& p = reps[s];
    RemoteShardStats& o = out[s];
    ShardStats& st = o.store;
    st.rows = p.rows();
    st.rows_cached = p.rows_cached();
    st.rows_on_disk = p.rows_on_disk();
    st.bytes_cached = p.bytes_cached();
    st.rocksdb_bytes = p.rocksdb_bytes();
    st.cache_hits = p.cache_hits();
    st.cache_misses = p.cache_misses();
    st.rows_pulled = p.rows_pulled();
    st.rows_pushed = p.rows_pushed();
    st.pulls = p.pulls();
    st.pushes = p.pushes();
    st.evictions = p.evictions();
    st.writebacks = p.writebacks();
    st.flushes = p.flushes();
    st.log_bytes = p.log_bytes();
    o.uptime_s = p.uptime_s();
    o.rate_window_s = p.rate_window_s();
    o.pull_rows_per_s = p.pull_rows_per_s();
    o.push_rows_per_s = p.push_rows_per_s();
    o.pull_calls_per_s = p.pull_calls_per_s();
    o.push_calls_per_s = p.push_calls_per_s();
    o.duplicate_pushes = p.duplicate_pushes();
    o.rejected_calls = p.rejected_calls();
  }
  return out;
}

std::vector<ShardStats> RemotePsClient::Stats() const {
  std::vector<ShardStats> out;
  for (const RemoteShardStats& s : RemoteStats()) out.push_back(s.store);
  return out;
}

int64_t RemotePsClient::num_rows() const {
  int64_t rows = 0;
  for (const ShardStats& s : Stats()) rows += s.rows;
  return rows;
}

void RemotePsClient::Checkpoint(const std::string& dir) {
  const Impl& m = *impl_;
  if (dir.empty()) throw std::invalid_argument("remote PS Checkpoint: empty directory");
  const fs::path base = fs::absolute(dir);
  const int n = static_cast<int>(m.shards.size());
  std::vector<CheckpointRequest> reqs(n);
  std::vector<CheckpointReply> reps(n);
  for (int s = 0; s < n; ++s) reqs[s].set_dir((base / ("shard-" + std::to_string(s))).string());
  // A checkpoint is not idempotent (its folder must not exist yet): retry only calls that never
  // reached a server, never one that ran out of time.
  m.Fanout<CheckpointRpc>("Checkpoint to " + base.string(), m.AllShards(), reqs, reps,
                          Budget{m.opt.max_attempts, std::numeric_limits<double>::infinity(), m.opt.checkpoint_timeout_s,
                                 false});
}

}  // namespace shardrec::ps
