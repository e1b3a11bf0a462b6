// ShardServer: the gRPC ParameterServer service over one ShardStore (sync server; gRPC's thread
// pool runs concurrent calls, the store serialises each call's slice under its lock).
#include "ps/shard_server.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "common/error.h"
#include "common/hash.h"
#include "ps/auth_token.h"
#include "ps/service_common.h"
#include "shardrec/ps.grpc.pb.h"

namespace shardrec::ps {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr char kIdentityFile[] = "ps-shard.identity";

std::string HostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos && host.front() != '[') return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// A folder written by shard i of n must not be served as another shard: its rows would be
// answered for ids that route elsewhere. Checked before the store opens; written after.
void CheckIdentity(const std::string& dir, int shard_id, int num_shards) {
  const fs::path p = fs::path(dir) / kIdentityFile;
  std::ifstream in(p);
  if (!in) return;
  std::string word;
  int id = -1, n = -1;
  in >> word >> id >> n;
  if (!in || word != "shard")
    throw UserError(p.string() + " is not a shard identity file (expected \"shard <id> <num_shards>\")");
  if (id != shard_id || n != num_shards)
    throw UserError("data dir " + dir + " holds shard " + std::to_string(id) + " of " + std::to_string(n) +
                    ", but this server is shard " + std::to_string(shard_id) + " of " + std::to_string(num_shards) +
                    " (--shard-id/--num-shards): rows are routed by shard id and count, so they must match");
}

void WriteIdentity(const std::string& dir, int shard_id, int num_shards) {
  const fs::path p = fs::path(dir) / kIdentityFile;
  if (fs::exists(p)) return;
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "shard " << shard_id << " " << num_shards << "\n";
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, p);
}

// Per-thread scratch of the handlers (gRPC's sync server runs each call on one thread).
struct Scratch {
  std::vector<int64_t> positions;  // 0..n-1
  std::vector<int64_t> ids;        // an aligned copy, where the payload is not 8-byte aligned
  std::vector<float> grads;        // likewise
};

const int64_t* Iota(Scratch& s, int64_t n) {
  const int64_t had = static_cast<int64_t>(s.positions.size());
  if (had < n) {
    s.positions.resize(n);
    for (int64_t i = had; i < n; ++i) s.positions[i] = i;
  }
  return s.positions.data();
}

template <typename T>
const T* Aligned(const std::string& bytes, std::vector<T>& copy) {
  if (reinterpret_cast<uintptr_t>(bytes.data()) % alignof(T) == 0) return reinterpret_cast<const T*>(bytes.data());
  copy.resize(bytes.size() / sizeof(T));
  std::memcpy(copy.data(), bytes.data(), copy.size() * sizeof(T));
  return copy.data();
}

// Counters behind the rates, sampled once a second.
struct RateSample {
  Clock::time_point at;
  int64_t rows_pulled, rows_pushed, pulls, pushes;
};

}  // namespace

struct ShardServer::Impl final : public ParameterServer::Service {
  std::vector<TableSpec> tables;
  ShardServerOptions opt;
  std::unique_ptr<ShardStore> store;
  bool durable = false;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  Clock::time_point started = Clock::now();

  std::atomic<int64_t> rows_pulled{0}, rows_pushed{0}, pulls{0}, pushes{0}, duplicates{0}, rejected{0};

  // Idempotent pushes: the last applied request_seq per client. A client's pushes are applied
  // under its own mutex, so a retry racing its first try waits, then sees it applied.
  struct ClientState {
    std::mutex mu;
    uint64_t last_seq = 0;
    Clock::time_point seen;
  };
  std::mutex clients_mu;
  std::unordered_map<std::string, std::shared_ptr<ClientState>> clients;

  std::mutex rates_mu;
  std::condition_variable rates_cv;
  std::deque<RateSample> samples;  // the last ~10 s
  bool stop_sampler = false;
  std::thread sampler;

  std::mutex shutdown_mu;
  std::condition_variable shutdown_cv;
  bool shut_down = false;

  // --- checks ---

  grpc::Status Reject(grpc::StatusCode code, const std::string& what) {
    rejected.fetch_add(1, std::memory_order_relaxed);
    return grpc::Status(code, "PS shard " + std::to_string(opt.shard_id) + ": " + what);
  }

  grpc::Status Authorize(grpc::ServerContext* ctx) {
    if (opt.token.empty()) return grpc::Status::OK;
    const auto& md = ctx->client_metadata();
    const auto it = md.find("authorization");
    if (it == md.end())
      return Reject(grpc::StatusCode::UNAUTHENTICATED,
                    "this server needs a token (metadata 'authorization: Bearer <token>'); the call carried none");
    if (!BearerMatches(std::string_view(it->second.data(), it->second.size()), opt.token))
      return Reject(grpc::StatusCode::UNAUTHENTICATED, "wrong token");
    return grpc::Status::OK;
  }

  grpc::Status CheckTable(const TableRef& ref, const char* what, int* table) {
    const int n = static_cast<int>(tables.size());
    if (ref.index() < 0 || ref.index() >= n) {
      std::string names;
      for (int t = 0; t < n && t < 8; ++t) names += (t ? ", " : "") + std::to_string(t) + " '" + tables[t].name + "'";
      if (n > 8) names += ", ...";
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    std::string(what) + ": unknown table index " + std::to_string(ref.index()) + " ('" + ref.name() +
                        "'); this shard serves " + std::to_string(n) + " table(s): " + names);
    }
    if (ref.name() != tables[ref.index()].name)
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    std::string(what) + ": table " + std::to_string(ref.index()) + " is '" + tables[ref.index()].name +
                        "' on this shard, the request names '" + ref.name() +
                        "': client and server were built from different configs");
    *table = ref.index();
    return grpc::Status::OK;
  }

  grpc::Status CheckIds(const std::string& ids, const char* what, int table, int64_t* n) {
    if (ids.size() % sizeof(int64_t) != 0)
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    std::string(what) + " of table '" + tables[table].name + "': ids is " + std::to_string(ids.size()) +
                        " bytes, not a multiple of 8 (packed little-endian int64)");
    *n = static_cast<int64_t>(ids.size() / sizeof(int64_t));
    if (*n > opt.max_ids_per_call)
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    std::string(what) + " of table '" + tables[table].name + "': " + std::to_string(*n) +
                        " ids, more than this server's max_ids_per_call " + std::to_string(opt.max_ids_per_call) +
                        "; split the call");
    const int64_t row_bytes = *n * tables[table].dim * static_cast<int64_t>(sizeof(float));
    if (row_bytes > opt.max_message_bytes - 1024)
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    std::string(what) + " of table '" + tables[table].name + "': " + std::to_string(*n) + " rows of dim " +
                        std::to_string(tables[table].dim) + " are " + std::to_string(row_bytes) +
                        " bytes, over the message limit " + std::to_string(opt.max_message_bytes) + "; split the call");
    return grpc::Status::OK;
  }

  static grpc::Status Internal(const char* what, const std::exception& e) {
    return grpc::Status(grpc::StatusCode::INTERNAL, std::string(what) + " failed: " + e.what());
  }

  // --- the service ---

  grpc::Status Pull(grpc::ServerContext* ctx, const PullRequest* req, PullReply* rep) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    int table = -1;
    int64_t n = 0;
    if (auto s = CheckTable(req->table(), "Pull", &table); !s.ok()) return s;
    if (auto s = CheckIds(req->ids(), "Pull", table, &n); !s.ok()) return s;
    thread_local Scratch scratch;
    const int dim = tables[table].dim;
    std::string* rows = rep->mutable_rows();
    rows->resize(static_cast<size_t>(n) * dim * sizeof(float));
    if (n > 0) {
      // std::string storage is malloc'ed (or the in-object buffer): aligned for float.
      float* out = reinterpret_cast<float*>(rows->data());
      try {
        store->Pull(table, Aligned(req->ids(), scratch.ids), Iota(scratch, n), n, out, req->read_only());
      } catch (const std::exception& e) {
        rep->clear_rows();
        return Internal("Pull", e);
      }
    }
    pulls.fetch_add(1, std::memory_order_relaxed);
    rows_pulled.fetch_add(n, std::memory_order_relaxed);
    return grpc::Status::OK;
  }

  grpc::Status Push(grpc::ServerContext* ctx, const PushRequest* req, PushReply* rep) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    int table = -1;
    int64_t n = 0;
    if (auto s = CheckTable(req->table(), "Push", &table); !s.ok()) return s;
    if (auto s = CheckIds(req->ids(), "Push", table, &n); !s.ok()) return s;
    const int dim = tables[table].dim;
    const size_t want = static_cast<size_t>(n) * dim * sizeof(float);
    if (req->grads().size() != want)
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    "Push of " + std::to_string(n) + " ids to table '" + tables[table].name + "' (dim " +
                        std::to_string(dim) + "): grads is " + std::to_string(req->grads().size()) + " bytes, expected " +
                        std::to_string(want) + " (n * dim float32)");
    thread_local Scratch scratch;
    auto apply = [&](const PushTag* tag) -> grpc::Status {
      if (n == 0) return grpc::Status::OK;
      try {
        store->Push(table, Aligned(req->ids(), scratch.ids), Iota(scratch, n), n, Aligned(req->grads(), scratch.grads),
                    tag);
      } catch (const std::exception& e) {
        return Internal("Push", e);
      }
      pushes.fetch_add(1, std::memory_order_relaxed);
      rows_pushed.fetch_add(n, std::memory_order_relaxed);
      return grpc::Status::OK;
    };
    if (req->client_id().empty() || req->request_seq() == 0) return apply(nullptr);

    std::shared_ptr<ClientState> c = Client(req->client_id());
    std::lock_guard<std::mutex> l(c->mu);
    if (req->request_seq() <= c->last_seq) {
      duplicates.fetch_add(1, std::memory_order_relaxed);
      rep->set_duplicate(true);
      return grpc::Status::OK;
    }
    const PushTag tag{ClientHash(req->client_id()), req->request_seq()};
    grpc::Status s = apply(&tag);
    if (s.ok()) c->last_seq = req->request_seq();
    return s;
  }

  static uint64_t ClientHash(const std::string& id) { return HashValue(id) | 1; }  // never 0 (untagged)

  std::shared_ptr<ClientState> Client(const std::string& id) {
    std::lock_guard<std::mutex> l(clients_mu);
    const Clock::time_point now = Clock::now();
    auto it = clients.find(id);
    if (it == clients.end()) {
      if (static_cast<int64_t>(clients.size()) >= opt.max_tracked_clients) {
        // Forget the client seen least recently (rare: one entry per trainer process).
        auto oldest = clients.begin();
        for (auto i = clients.begin(); i != clients.end(); ++i)
          if (i->second->seen < oldest->second->seen) oldest = i;
        clients.erase(oldest);
      }
      it = clients.emplace(id, std::make_shared<ClientState>()).first;
      // A client this process has not seen may have pushed before a restart: the store knows.
      it->second->last_seq = store->LastRequestSeq(ClientHash(id));
    }
    it->second->seen = now;
    return it->second;
  }

  grpc::Status Checkpoint(grpc::ServerContext* ctx, const CheckpointRequest* req, CheckpointReply*) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    if (req->dir().empty() || !fs::path(req->dir()).is_absolute())
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    "Checkpoint: dir must be an absolute path on the server, got '" + req->dir() + "'");
    try {
      store->Checkpoint(req->dir());
    } catch (const std::logic_error& e) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "PS shard " + std::to_string(opt.shard_id) + ": Checkpoint: " + e.what());
    } catch (const std::exception& e) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          "PS shard " + std::to_string(opt.shard_id) + ": Checkpoint to " + req->dir() + " failed: " + e.what());
    }
    return grpc::Status::OK;
  }

  grpc::Status Stats(grpc::ServerContext* ctx, const StatsRequest*, StatsReply* rep) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    ShardStats st;
    try {
      st = store->Stats();
    } catch (const std::exception& e) {
      return Internal("Stats", e);
    }
    rep->set_rows(st.rows);
    rep->set_rows_cached(st.rows_cached);
    rep->set_rows_on_disk(st.rows_on_disk);
    rep->set_bytes_cached(st.bytes_cached);
    rep->set_rocksdb_bytes(st.rocksdb_bytes);
    rep->set_cache_hits(st.cache_hits);
    rep->set_cache_misses(st.cache_misses);
    rep->set_rows_pulled(st.rows_pulled);
    rep->set_rows_pushed(st.rows_pushed);
    rep->set_pulls(st.pulls);
    rep->set_pushes(st.pushes);
    rep->set_evictions(st.evictions);
    rep->set_writebacks(st.writebacks);
    rep->set_flushes(st.flushes);
    rep->set_log_bytes(st.log_bytes);
    const Clock::time_point now = Clock::now();
    rep->set_uptime_s(std::chrono::duration<double>(now - started).count());
    RateSample first{}, last = Sample(now);
    {
      std::lock_guard<std::mutex> l(rates_mu);
      first = samples.empty() ? RateSample{started, 0, 0, 0, 0} : samples.front();
    }
    const double window = std::chrono::duration<double>(last.at - first.at).count();
    rep->set_rate_window_s(window);
    if (window > 0) {
      rep->set_pull_rows_per_s((last.rows_pulled - first.rows_pulled) / window);
      rep->set_push_rows_per_s((last.rows_pushed - first.rows_pushed) / window);
      rep->set_pull_calls_per_s((last.pulls - first.pulls) / window);
      rep->set_push_calls_per_s((last.pushes - first.pushes) / window);
    }
    rep->set_duplicate_pushes(duplicates.load());
    rep->set_rejected_calls(rejected.load());
    return grpc::Status::OK;
  }

  grpc::Status Health(grpc::ServerContext* ctx, const HealthRequest*, HealthReply* rep) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    rep->set_ok(true);
    return grpc::Status::OK;
  }

  grpc::Status Describe(grpc::ServerContext* ctx, const DescribeRequest*, DescribeReply* rep) override {
    if (auto s = Authorize(ctx); !s.ok()) return s;
    rep->set_shard_id(opt.shard_id);
    rep->set_num_shards(opt.num_shards);
    for (size_t t = 0; t < tables.size(); ++t) {
      TableInfo* ti = rep->add_tables();
      ti->set_index(static_cast<int>(t));
      ti->set_name(tables[t].name);
      ti->set_dim(tables[t].dim);
      ti->set_optimizer(OptimizerName(tables[t].optimizer.kind));
      ti->set_fingerprint(TableFingerprint(tables[t]));
    }
    rep->set_max_message_bytes(opt.max_message_bytes);
    rep->set_max_ids_per_call(opt.max_ids_per_call);
    rep->set_durable(durable);
    rep->set_version(kPsServiceVersion);
    return grpc::Status::OK;
  }

  // --- rates ---

  RateSample Sample(Clock::time_point now) const {
    return RateSample{now, rows_pulled.load(), rows_pushed.load(), pulls.load(), pushes.load()};
  }

  void SamplerLoop() {
    std::unique_lock<std::mutex> l(rates_mu);
    samples.push_back(Sample(Clock::now()));
    while (!rates_cv.wait_for(l, std::chrono::seconds(1), [&] { return stop_sampler; })) {
      samples.push_back(Sample(Clock::now()));
      while (samples.size() > 11) samples.pop_front();
    }
  }
};

ShardServer::ShardServer(std::vector<TableSpec> tables, ShardStoreOptions store_options, ShardServerOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.tables = std::move(tables);
  m.opt = std::move(options);
  if (m.opt.num_shards < 1 || m.opt.shard_id < 0 || m.opt.shard_id >= m.opt.num_shards)
    throw std::invalid_argument("PS server: shard_id " + std::to_string(m.opt.shard_id) + " of num_shards " +
                                std::to_string(m.opt.num_shards) + ": need 0 <= shard_id < num_shards");
  if (m.opt.max_message_bytes < (int64_t{1} << 20) || m.opt.max_message_bytes > INT32_MAX)
    throw std::invalid_argument("PS server: max_message_bytes must be in [1 MiB, 2 GiB)");
  for (const TableSpec& t : m.tables)
    if (t.dim < 1) throw std::invalid_argument("PS server: table '" + t.name + "': dim must be >= 1");

  m.durable = !store_options.dir.empty();
  if (m.durable) CheckIdentity(store_options.dir, m.opt.shard_id, m.opt.num_shards);
  m.store = std::make_unique<ShardStore>(m.tables, store_options);
  if (m.durable) WriteIdentity(store_options.dir, m.opt.shard_id, m.opt.num_shards);

  grpc::ServerBuilder b;
  // gRPC sets SO_REUSEPORT by default: a second server on a busy port would then start and
  // silently share it. Refuse instead.
  b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  b.SetMaxReceiveMessageSize(static_cast<int>(m.opt.max_message_bytes));
  b.SetMaxSendMessageSize(static_cast<int>(m.opt.max_message_bytes));
  const std::string where = HostPort(m.opt.bind_address, m.opt.port);
  b.AddListeningPort(where, grpc::InsecureServerCredentials(), &m.port);
  b.RegisterService(&m);
  m.server = b.BuildAndStart();
  if (!m.server || m.port == 0)
    throw std::runtime_error("PS shard " + std::to_string(m.opt.shard_id) + ": cannot listen on " + where +
                             " (port in use, or not an address of this host)");
  m.sampler = std::thread([&m] { m.SamplerLoop(); });
}

ShardServer::~ShardServer() {
  try {
    Shutdown();
  } catch (const std::exception&) {
    // The store's destructor flushes again and reports what it can.
  }
  // The store closes (and flushes) when impl_ goes, after the server has stopped.
}

int ShardServer::port() const { return impl_->port; }

std::string ShardServer::address() const { return HostPort(impl_->opt.bind_address, impl_->port); }

void ShardServer::Shutdown(double grace_seconds) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> sl(m.shutdown_mu);
  if (m.shut_down) return;
  const auto grace = std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::duration<double>(std::max(0.0, grace_seconds)));
  m.server->Shutdown(std::chrono::system_clock::now() + grace);
  m.server->Wait();
  {
    std::lock_guard<std::mutex> l(m.rates_mu);
    m.stop_sampler = true;
  }
  m.rates_cv.notify_all();
  if (m.sampler.joinable()) m.sampler.join();
  std::exception_ptr flush_error;
  try {
    m.store->Flush();
  } catch (...) {
    flush_error = std::current_exception();  // a disk error: the caller hears of it
  }
  m.shut_down = true;
  m.shutdown_cv.notify_all();
  if (flush_error) std::rethrow_exception(flush_error);
}

void ShardServer::Wait() {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> l(m.shutdown_mu);
  m.shutdown_cv.wait(l, [&] { return m.shut_down; });
}

ShardStore& ShardServer::store() { return *impl_->store; }

}  // namespace shardrec::ps
