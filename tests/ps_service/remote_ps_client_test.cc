// RemotePsClient against shard servers in this process: the same rows as the in-process PS,
// routed the same way; clear errors for dead, hung or mismatched servers; checkpoints; reconnects.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "ps/ps_client.h"
#include "ps/remote_ps_client.h"
#include "ps/routing.h"
#include "ps/shard_server.h"
#include "ps_service_test_util.h"
#include "test_util.h"

namespace shardrec::ps {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testing::Addresses;
using testing::ReadRows;
using testing::SameBits;
using testing::ServiceTables;
using testing::StartServers;

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Fast failure for the error tests.
RemotePsOptions Impatient() {
  RemotePsOptions o;
  o.connect_timeout_s = 1;
  o.rpc_timeout_s = 0.5;
  o.max_attempts = 3;
  o.initial_backoff_s = 0.05;
  o.max_backoff_s = 0.2;
  return o;
}

TEST(RemotePs, SameRowsAsInProcessPsWithTwoShards) {
  const auto tables = ServiceTables();
  auto servers = StartServers(2, tables);
  RemotePsClient remote(Addresses(servers), tables);
  auto local = MakeInProcessPs(tables, InProcessOptions{2});
  const auto vocab = testing::ServiceVocab(2000, 11);
  std::mt19937_64 rng(12);
  int pulls = 0, pushes = 0;
  for (int step = 0; step < 300; ++step) {
    const int table = static_cast<int>(rng() % tables.size());
    const int dim = tables[table].dim;
    const auto ids = testing::DrawIds(rng, vocab, step % 50 == 0 ? 1 : 600);
    const int64_t n = static_cast<int64_t>(ids.size());
    if (rng() % 2 == 0) {
      const bool read_only = rng() % 4 == 0;
      std::vector<float> a(n * dim, -1.f), b(n * dim, -2.f);
      remote.Pull(table, ids.data(), n, a.data(), read_only);
      local->Pull(table, ids.data(), n, b.data(), read_only);
      ASSERT_TRUE(SameBits(a, b)) << "step " << step << " table " << table;
      ++pulls;
    } else {
      const auto g = testing::RandomGrads(rng, n * dim);
      remote.Push(table, ids.data(), n, g.data());
      local->Push(table, ids.data(), n, g.data());
      ++pushes;
    }
  }
  ASSERT_GT(pulls, 50);
  ASSERT_GT(pushes, 50);
  remote.Push(0, nullptr, 0, nullptr);  // empty calls are no-ops
  remote.Pull(0, nullptr, 0, nullptr);
  for (size_t t = 0; t < tables.size(); ++t)
    EXPECT_TRUE(SameBits(ReadRows(remote, static_cast<int>(t), vocab), ReadRows(*local, static_cast<int>(t), vocab)))
        << "table " << t;
  EXPECT_EQ(remote.num_rows(), local->num_rows());
  // Same routing: each shard holds the rows the in-process PS's shard of that index holds.
  const auto rs = remote.Stats(), ls = local->Stats();
  ASSERT_EQ(rs.size(), 2u);
  for (int s = 0; s < 2; ++s) EXPECT_EQ(rs[s].rows, ls[s].rows) << "shard " << s;
  EXPECT_GT(rs[0].rows, 0);
  EXPECT_GT(rs[1].rows, 0);
  EXPECT_THROW(remote.Pull(3, vocab.data(), 1, nullptr), std::out_of_range);
}

// The strongest check of routing: folders written by the in-process PS are served by shard
// servers of the same index, and every row is found where the client looks for it.
TEST(RemotePs, ServesTheFoldersOfAnInProcessPs) {
  const auto tables = ServiceTables();
  const std::string dir = shardrec::testing::TempDir("ps-remote-folders");
  const auto vocab = testing::ServiceVocab(3000, 21);
  std::vector<std::vector<float>> expected;
  int64_t rows = 0;
  {
    InProcessOptions o(3);
    o.data_dir = dir + "/data";
    o.cache_bytes = 1 << 20;
    auto local = MakeInProcessPs(tables, o);
    std::mt19937_64 rng(22);
    for (int step = 0; step < 60; ++step) {
      const int table = step % 3;
      const auto ids = testing::DrawIds(rng, vocab, 800);
      const auto g = testing::RandomGrads(rng, ids.size() * tables[table].dim);
      local->Push(table, ids.data(), static_cast<int64_t>(ids.size()), g.data());
    }
    for (int t = 0; t < 3; ++t) expected.push_back(ReadRows(*local, t, vocab));
    rows = local->num_rows();
  }
  auto servers = StartServers(3, tables, {dir + "/data/shard-0", dir + "/data/shard-1", dir + "/data/shard-2"});
  RemotePsClient remote(Addresses(servers), tables);
  EXPECT_TRUE(remote.durable());
  EXPECT_EQ(remote.num_rows(), rows);
  for (int t = 0; t < 3; ++t) EXPECT_TRUE(SameBits(ReadRows(remote, t, vocab), expected[t])) << "table " << t;
  EXPECT_EQ(remote.num_rows(), rows);  // read-only pulls found every row: none was created
  servers.clear();
  fs::remove_all(dir);
}

// Threads of two clients pull and push disjoint id ranges at once: each range ends as its own
// pushes, applied in order, make it.
TEST(RemotePs, ConcurrentCallsOfTwoClients) {
  const auto tables = ServiceTables();
  auto servers = StartServers(2, tables);
  RemotePsClient c1(Addresses(servers), tables), c2(Addresses(servers), tables);
  auto local = MakeInProcessPs(tables, InProcessOptions{2});
  constexpr int kThreads = 4;
  std::vector<std::vector<int64_t>> vocab(kThreads);
  for (int k = 0; k < kThreads; ++k) vocab[k] = testing::ServiceVocab(500, 100 + k);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      RemotePsClient& c = k % 2 ? c2 : c1;
      std::mt19937_64 rng(200 + k);
      for (int step = 0; step < 60; ++step) {
        const int table = static_cast<int>(rng() % 3);
        auto ids = testing::DrawIds(rng, vocab[k], 300);
        std::vector<float> out(ids.size() * tables[table].dim);
        c.Pull(table, ids.data(), static_cast<int64_t>(ids.size()), out.data());
        const auto g = testing::RandomGrads(rng, ids.size() * tables[table].dim);
        c.Push(table, ids.data(), static_cast<int64_t>(ids.size()), g.data());
      }
    });
  }
  for (auto& t : threads) t.join();
  // The same streams, one after another, in process.
  for (int k = 0; k < kThreads; ++k) {
    std::mt19937_64 rng(200 + k);
    for (int step = 0; step < 60; ++step) {
      const int table = static_cast<int>(rng() % 3);
      auto ids = testing::DrawIds(rng, vocab[k], 300);
      std::vector<float> out(ids.size() * tables[table].dim);
      local->Pull(table, ids.data(), static_cast<int64_t>(ids.size()), out.data());
      const auto g = testing::RandomGrads(rng, ids.size() * tables[table].dim);
      local->Push(table, ids.data(), static_cast<int64_t>(ids.size()), g.data());
    }
  }
  for (int k = 0; k < kThreads; ++k)
    for (int t = 0; t < 3; ++t)
      EXPECT_TRUE(SameBits(ReadRows(c1, t, vocab[k]), ReadRows(*local, t, vocab[k]))) << "range " << k << " table " << t;
  EXPECT_EQ(failures.load(), 0);
  const auto stats = c1.RemoteStats();
  for (const auto& s : stats) EXPECT_EQ(s.duplicate_pushes, 0);
}

TEST(RemotePs, NothingListeningFailsClearlyAtConnect) {
  // A port that was free a moment ago.
  int port;
  {
    auto s = StartServers(1, ServiceTables());
    port = s[0]->port();
  }
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  const auto t0 = Clock::now();
  try {
    RemotePsClient c({addr}, ServiceTables(), Impatient());
    ADD_FAILURE() << "connected to nothing";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("PS shard 0 at " + addr + " is unreachable: UNAVAILABLE"), std::string::npos) << m;
  }
  EXPECT_LT(SecondsSince(t0), 3.0);
}

TEST(RemotePs, DeadShardFailsClearlyWithinTheRetryBudget) {
  const auto tables = ServiceTables();
  auto servers = StartServers(2, tables);
  RemotePsClient c(Addresses(servers), tables, Impatient());
  const std::string dead = servers[1]->address();
  servers[1]->Shutdown(0);
  const auto vocab = testing::ServiceVocab(100, 31);  // 100 ids: both shards get some
  std::vector<float> out(100 * 8);
  for (bool push : {false, true}) {
    const auto t0 = Clock::now();
    try {
      if (push) {
        c.Push(0, vocab.data(), 100, out.data());
      } else {
        c.Pull(0, vocab.data(), 100, out.data());
      }
      ADD_FAILURE() << "a call to a dead shard returned";
    } catch (const std::runtime_error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("PS shard 1 at " + dead + " is unreachable"), std::string::npos) << m;
      EXPECT_NE(m.find("3 tries"), std::string::npos) << m;
      EXPECT_NE(m.find(push ? "Push of table 'user'" : "Pull of table 'user'"), std::string::npos) << m;
    }
    EXPECT_LT(SecondsSince(t0), 3.0);
  }
}

TEST(RemotePs, HungServerHitsTheDeadline) {
  // Accepts TCP connections (the kernel's backlog) but never speaks HTTP/2.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string addr = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  const auto t0 = Clock::now();
  try {
    RemotePsClient c({addr}, ServiceTables(), Impatient());
    ADD_FAILURE() << "connected to a mute server";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    // DEADLINE_EXCEEDED while the connection hangs; then gRPC gives up on the handshake and
    // reports UNAVAILABLE. Either way: a clear error, in time.
    EXPECT_NE(m.find("PS shard 0 at " + addr + " is unreachable: "), std::string::npos) << m;
  }
  EXPECT_LT(SecondsSince(t0), 3.0);
  ::close(fd);
}

TEST(RemotePs, MismatchedServersAreRefusedAtConnect) {
  const auto tables = ServiceTables();
  auto servers = StartServers(2, tables);
  auto expect_error = [&](std::vector<std::string> addrs, std::vector<TableSpec> t, const std::string& part) {
    try {
      RemotePsClient c(addrs, t, Impatient());
      ADD_FAILURE() << "accepted: " << part;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  const auto a = Addresses(servers);
  expect_error({a[1], a[0]}, tables, "PS shard 0 at " + a[1] + " is shard 1 of 2");
  expect_error({a[0]}, tables, "is shard 0 of 2 (its --shard-id/--num-shards), but this client expects shard 0 of 1");
  auto t = tables;
  t[1].dim = 4;
  expect_error(a, t, "table 1 ('item') has dim 3 there, 4 here");
  t = tables;
  t[2].optimizer.l1 = 0.5f;
  expect_error(a, t, "table 2 ('ctx') has other initializer or optimizer settings");
  t = tables;
  t[0].optimizer.kind = OptimizerSpec::Kind::kSgd;
  expect_error(a, t, "has optimizer ADAGRAD there, SGD here");
  t = tables;
  t.pop_back();
  expect_error(a, t, "serves 3 table(s), this client's config has 2");
}

TEST(RemotePs, CheckpointOfEveryShardRestoresInProcess) {
  const auto tables = ServiceTables();
  const std::string dir = shardrec::testing::TempDir("ps-remote-ckpt");
  auto servers = StartServers(2, tables, {dir + "/s0", dir + "/s1"});
  RemotePsClient remote(Addresses(servers), tables);
  const auto vocab = testing::ServiceVocab(1000, 41);
  std::mt19937_64 rng(42);
  for (int step = 0; step < 30; ++step) {
    const int table = step % 3;
    const auto ids = testing::DrawIds(rng, vocab, 400);
    const auto g = testing::RandomGrads(rng, ids.size() * tables[table].dim);
    remote.Push(table, ids.data(), static_cast<int64_t>(ids.size()), g.data());
  }
  remote.Checkpoint(dir + "/ckpt");
  EXPECT_TRUE(fs::is_directory(dir + "/ckpt/shard-0"));
  EXPECT_TRUE(fs::is_directory(dir + "/ckpt/shard-1"));
  EXPECT_THROW(remote.Checkpoint(dir + "/ckpt"), std::runtime_error);  // exists: refused, not overwritten
  RestoreInProcessCheckpoint(dir + "/ckpt", dir + "/restored");
  InProcessOptions o(2);
  o.data_dir = dir + "/restored";
  auto local = MakeInProcessPs(tables, o);
  for (int t = 0; t < 3; ++t) EXPECT_TRUE(SameBits(ReadRows(remote, t, vocab), ReadRows(*local, t, vocab))) << t;
  EXPECT_EQ(remote.num_rows(), local->num_rows());
  local.reset();
  servers.clear();
  fs::remove_all(dir);
}

// A shard restarted on the same folder and port: the client's retries carry it over the gap,
// and every acknowledged push is still there.
TEST(RemotePs, ClientRidesOutAServerRestart) {
  const auto tables = ServiceTables();
  const std::string dir = shardrec::testing::TempDir("ps-remote-restart");
  auto servers = StartServers(1, tables, {dir + "/s0"});
  RemotePsOptions ro;
  ro.max_attempts = 30;
  ro.initial_backoff_s = 0.05;
  ro.max_backoff_s = 0.2;
  RemotePsClient remote(Addresses(servers), tables, ro);
  auto local = MakeInProcessPs(tables, InProcessOptions{1});
  const auto vocab = testing::ServiceVocab(500, 51);
  std::mt19937_64 rng(52);
  auto push = [&] {
    const auto ids = testing::DrawIds(rng, vocab, 200);
    const auto g = testing::RandomGrads(rng, ids.size() * 8);
    remote.Push(0, ids.data(), static_cast<int64_t>(ids.size()), g.data());
    local->Push(0, ids.data(), static_cast<int64_t>(ids.size()), g.data());
  };
  for (int i = 0; i < 10; ++i) push();
  const int port = servers[0]->port();
  servers.clear();  // graceful: flushed
  std::thread restart([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ShardStoreOptions so;
    so.dir = dir + "/s0";
    ShardServerOptions o;
    o.port = port;
    servers.push_back(std::make_unique<ShardServer>(tables, so, o));
  });
  const auto t0 = Clock::now();
  push();  // retried until the server is back
  restart.join();
  EXPECT_GT(SecondsSince(t0), 0.2);
  for (int i = 0; i < 5; ++i) push();
  EXPECT_TRUE(SameBits(ReadRows(remote, 0, vocab), ReadRows(*local, 0, vocab)));
  servers.clear();
  fs::remove_all(dir);
}

TEST(RemotePs, StatsReportRates) {
  const auto tables = ServiceTables();
  auto servers = StartServers(2, tables);
  RemotePsClient remote(Addresses(servers), tables);
  const auto vocab = testing::ServiceVocab(1000, 61);
  std::vector<float> out(vocab.size() * 8);
  for (int i = 0; i < 5; ++i) remote.Pull(0, vocab.data(), 1000, out.data());
  const auto st = remote.RemoteStats();
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].store.rows_pulled + st[1].store.rows_pulled, 5000);
  EXPECT_EQ(st[0].store.rows + st[1].store.rows, 1000);
  EXPECT_GT(st[0].pull_rows_per_s, 0);
  EXPECT_GT(st[0].rate_window_s, 0);
  EXPECT_EQ(st[0].push_rows_per_s, 0);
  // ShardOf agrees with the in-process routing (shard 0 gets what it holds).
  int64_t on0 = 0;
  for (int64_t id : vocab) on0 += ShardOf(0, id, 2) == 0;
  EXPECT_EQ(st[0].store.rows, on0);
}

}  // namespace
}  // namespace shardrec::ps
