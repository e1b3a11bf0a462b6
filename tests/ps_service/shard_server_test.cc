// ShardServer on the wire: malformed requests are refused and change nothing, the token is
// enforced, retried pushes are applied once, a data dir stays with its shard.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "ps/auth_token.h"
#include "ps/remote_ps_client.h"
#include "ps/shard_server.h"
#include "ps_service_test_util.h"
#include "shardrec/ps.grpc.pb.h"
#include "test_util.h"

namespace shardrec::ps {
namespace {

namespace fs = std::filesystem;
using testing::ServiceTables;

std::unique_ptr<ParameterServer::Stub> RawStub(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return ParameterServer::NewStub(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

std::string Bytes(const std::vector<int64_t>& ids) {
  return std::string(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(int64_t));
}
std::string Bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

PushRequest MakePush(int table, const std::string& name, const std::vector<int64_t>& ids, const std::vector<float>& grads) {
  PushRequest q;
  q.mutable_table()->set_index(table);
  q.mutable_table()->set_name(name);
  q.set_ids(Bytes(ids));
  q.set_grads(Bytes(grads));
  return q;
}

grpc::Status Call(ParameterServer::Stub& stub, const PushRequest& q, PushReply* r = nullptr, const std::string& token = "") {
  grpc::ClientContext ctx;
  if (!token.empty()) ctx.AddMetadata("authorization", BearerHeader(token));
  PushReply tmp;
  return stub.Push(&ctx, q, r ? r : &tmp);
}

grpc::Status Call(ParameterServer::Stub& stub, const PullRequest& q, PullReply* r = nullptr, const std::string& token = "") {
  grpc::ClientContext ctx;
  if (!token.empty()) ctx.AddMetadata("authorization", BearerHeader(token));
  PullReply tmp;
  return stub.Pull(&ctx, q, r ? r : &tmp);
}

// Everything a bad call could have changed: every row of the vocabulary (read straight from the
// store, so nothing is created) and the store's counters.
struct Snapshot {
  std::vector<std::vector<float>> rows;
  int64_t num_rows, pushes, rows_pushed;
};

Snapshot Take(ShardServer& server, const std::vector<TableSpec>& tables, const std::vector<int64_t>& vocab) {
  Snapshot s;
  std::vector<int64_t> pos(vocab.size());
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int64_t>(i);
  for (size_t t = 0; t < tables.size(); ++t) {
    std::vector<float> out(vocab.size() * tables[t].dim);
    server.store().Pull(static_cast<int>(t), vocab.data(), pos.data(), static_cast<int64_t>(vocab.size()), out.data(), true);
    s.rows.push_back(std::move(out));
  }
  const ShardStats st = server.store().Stats();
  s.num_rows = st.rows;
  s.pushes = st.pushes;
  s.rows_pushed = st.rows_pushed;
  return s;
}

void ExpectSame(const Snapshot& a, const Snapshot& b) {
  EXPECT_EQ(a.num_rows, b.num_rows);
  EXPECT_EQ(a.pushes, b.pushes);
  EXPECT_EQ(a.rows_pushed, b.rows_pushed);
  ASSERT_EQ(a.rows.size(), b.rows.size());
  for (size_t t = 0; t < a.rows.size(); ++t) EXPECT_TRUE(testing::SameBits(a.rows[t], b.rows[t])) << "table " << t;
}

TEST(ShardServer, MalformedRequestsAreRefusedAndChangeNothing) {
  const auto tables = ServiceTables();
  ShardServerOptions o;
  o.max_ids_per_call = 100;
  ShardServer server(tables, ShardStoreOptions{}, o);
  auto stub = RawStub(server.address());
  const auto vocab = testing::ServiceVocab(200, 3);
  std::mt19937_64 rng(5);

  // Some rows first, so that "nothing changed" is about existing rows too.
  const std::vector<int64_t> ids(vocab.begin(), vocab.begin() + 50);
  ASSERT_TRUE(Call(*stub, MakePush(0, "user", ids, testing::RandomGrads(rng, 50 * 8))).ok());
  const Snapshot before = Take(server, tables, vocab);
  ASSERT_EQ(before.num_rows, 50);

  struct Case {
    std::string what;
    PushRequest push;
    bool is_pull = false;
    PullRequest pull;
    std::string message;  // a part of the expected error message
  };
  std::vector<Case> cases;
  {
    Case c;
    c.what = "unknown table index";
    c.push = MakePush(7, "user", ids, testing::RandomGrads(rng, 50 * 8));
    c.message = "unknown table index 7";
    cases.push_back(c);
  }
  {
    Case c;
    c.what = "name and index disagree";
    c.push = MakePush(0, "item", ids, testing::RandomGrads(rng, 50 * 8));
    c.message = "different configs";
    cases.push_back(c);
  }
  {
    Case c;
    c.what = "negative table index";
    c.push = MakePush(-1, "user", ids, testing::RandomGrads(rng, 50 * 8));
    c.message = "unknown table index -1";
    cases.push_back(c);
  }
  {
    Case c;
    c.what = "truncated ids";
    c.push = MakePush(0, "user", ids, testing::RandomGrads(rng, 50 * 8));
    c.push.mutable_ids()->resize(50 * 8 - 3);
    c.message = "not a multiple of 8";
    cases.push_back(c);
  }
  {
    Case c;
    c.what = "grads short by one float";
    c.push = MakePush(0, "user", ids, testing::RandomGrads(rng, 50 * 8 - 1));
    c.message = "expected 1600";
    cases.push_back(c);
  }
  {
    Case c;
    c.what = "grads of the wrong dim";
    c.push = MakePush(1, "item", ids, testing::RandomGrads(rng, 50 * 8));
    c.message = "grads is 1600 bytes, expected 600";
    cases.push_back(c);
  }
  {
    std::vector<int64_t> many(vocab.begin(), vocab.begin() + 101);
    Case c;
    c.what = "too many ids";
    c.push = MakePush(2, "ctx", many, testing::RandomGrads(rng, 101 * 5));
    c.message = "max_ids_per_call";
    cases.push_back(c);
  }
  {
    Case c;
    c.what = "pull: truncated ids";
    c.is_pull = true;
    c.pull.mutable_table()->set_index(0);
    c.pull.mutable_table()->set_name("user");
    c.pull.set_ids(Bytes(ids).substr(0, 12));
    c.message = "not a multiple of 8";
    cases.push_back(c);
  }
  {
    Case c;
    c.what = "pull: unknown table name";
    c.is_pull = true;
    c.pull.mutable_table()->set_index(2);
    c.pull.mutable_table()->set_name("nope");
    c.pull.set_ids(Bytes(ids));
    c.message = "'nope'";
    cases.push_back(c);
  }
  for (const Case& c : cases) {
    const grpc::Status s = c.is_pull ? Call(*stub, c.pull) : Call(*stub, c.push);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.what << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(c.message), std::string::npos) << c.what << ": " << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    CheckpointRequest q;
    q.set_dir("relative/dir");
    CheckpointReply r;
    EXPECT_EQ(stub->Checkpoint(&ctx, q, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  ExpectSame(before, Take(server, tables, vocab));

  grpc::ClientContext ctx;
  StatsReply st;
  ASSERT_TRUE(stub->Stats(&ctx, StatsRequest{}, &st).ok());
  EXPECT_EQ(st.rejected_calls(), static_cast<int64_t>(cases.size()) + 1);
}

TEST(ShardServer, TokenIsRequiredWhenConfigured) {
  const auto tables = ServiceTables();
  ShardServerOptions o;
  o.token = "s3cret-token";
  ShardServer server(tables, ShardStoreOptions{}, o);
  auto stub = RawStub(server.address());
  const auto vocab = testing::ServiceVocab(20, 4);
  std::mt19937_64 rng(6);
  const Snapshot before = Take(server, tables, vocab);

  const PushRequest push = MakePush(0, "user", vocab, testing::RandomGrads(rng, 20 * 8));
  grpc::Status s = Call(*stub, push);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  s = Call(*stub, push, nullptr, "s3cret-tokeX");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  s = Call(*stub, push, nullptr, "s3cret-token-and-more");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "s3cret-token");  // no "Bearer "
    PushReply r;
    EXPECT_EQ(stub->Push(&ctx, push, &r).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  for (auto call : {0, 1, 2}) {  // every method is guarded, not only the bulk ones
    grpc::ClientContext ctx;
    grpc::Status st;
    if (call == 0) {
      DescribeReply r;
      st = stub->Describe(&ctx, DescribeRequest{}, &r);
    } else if (call == 1) {
      StatsReply r;
      st = stub->Stats(&ctx, StatsRequest{}, &r);
    } else {
      HealthReply r;
      st = stub->Health(&ctx, HealthRequest{}, &r);
    }
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << call;
  }
  ExpectSame(before, Take(server, tables, vocab));

  EXPECT_TRUE(Call(*stub, push, nullptr, "s3cret-token").ok());
  EXPECT_EQ(server.store().num_rows(), 20);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", BearerHeader("s3cret-token"));
    HealthReply r;
    EXPECT_TRUE(stub->Health(&ctx, HealthRequest{}, &r).ok());
    EXPECT_TRUE(r.ok());
  }

  // Through the client: a wrong token fails at connection, naming the shard and the cause.
  RemotePsOptions ro;
  ro.token = "wrong";
  try {
    RemotePsClient c({server.address()}, tables, ro);
    ADD_FAILURE() << "connected with a wrong token";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("PS shard 0 at " + server.address()), std::string::npos) << m;
    EXPECT_NE(m.find("UNAUTHENTICATED"), std::string::npos) << m;
    EXPECT_NE(m.find("token"), std::string::npos) << m;
  }
  ro.token = "s3cret-token";
  RemotePsClient c({server.address()}, tables, ro);
  EXPECT_EQ(c.num_rows(), 20);
}

TEST(ShardServer, TokenComesFromFileOrEnvironment) {
  const std::string dir = shardrec::testing::TempDir("ps-token");
  ::unsetenv(kPsTokenEnv);
  EXPECT_TRUE(LoadPsToken("").value.empty());
  ::setenv(kPsTokenEnv, "  from-env\n", 1);
  EXPECT_EQ(LoadPsToken("").value, "from-env");
  std::ofstream(dir + "/tok") << "  from-file \n";
  fs::permissions(dir + "/tok", fs::perms::owner_read | fs::perms::owner_write);
  const PsToken t = LoadPsToken(dir + "/tok");  // the file wins over the environment
  EXPECT_EQ(t.value, "from-file");
  EXPECT_TRUE(t.warning.empty()) << t.warning;
  fs::permissions(dir + "/tok", fs::perms::group_read, fs::perm_options::add);
  EXPECT_FALSE(LoadPsToken(dir + "/tok").warning.empty());
  std::ofstream(dir + "/empty") << "\n";
  EXPECT_THROW(LoadPsToken(dir + "/empty"), UserError);
  EXPECT_THROW(LoadPsToken(dir + "/missing"), UserError);
  ::unsetenv(kPsTokenEnv);
  EXPECT_TRUE(BearerMatches("Bearer abc", "abc"));
  EXPECT_FALSE(BearerMatches("Bearer abd", "abc"));
  EXPECT_FALSE(BearerMatches("Bearer ab", "abc"));
  EXPECT_FALSE(BearerMatches("", "abc"));
  fs::remove_all(dir);
}

TEST(ShardServer, RetriedPushIsAppliedOnce) {
  const auto tables = ServiceTables();
  ShardServer server(tables, ShardStoreOptions{}, ShardServerOptions{});
  ShardServer twin(tables, ShardStoreOptions{}, ShardServerOptions{});  // gets each push once
  auto stub = RawStub(server.address());
  auto twin_stub = RawStub(twin.address());
  const auto vocab = testing::ServiceVocab(30, 8);
  std::mt19937_64 rng(9);

  auto push = [&](const std::string& client, uint64_t seq, const std::vector<float>& g, bool expect_dup) {
    PushRequest q = MakePush(0, "user", vocab, g);
    q.set_client_id(client);
    q.set_request_seq(seq);
    PushReply r;
    ASSERT_TRUE(Call(*stub, q, &r).ok());
    EXPECT_EQ(r.duplicate(), expect_dup) << client << " seq " << seq;
    if (!expect_dup) ASSERT_TRUE(Call(*twin_stub, MakePush(0, "user", vocab, g)).ok());
  };
  const auto g1 = testing::RandomGrads(rng, 30 * 8), g2 = testing::RandomGrads(rng, 30 * 8),
             g3 = testing::RandomGrads(rng, 30 * 8);
  push("A", 1, g1, false);
  push("A", 1, g1, true);   // the retry of a push whose reply was lost
  push("A", 2, g2, false);
  push("A", 1, g1, true);   // a straggler of an older try
  push("A", 2, g2, true);
  push("B", 1, g3, false);  // another client numbers its own pushes
  push("A", 5, g3, false);  // numbers may skip (pushes that touched other shards)
  push("A", 4, g3, true);
  const Snapshot a = Take(server, tables, vocab), b = Take(twin, tables, vocab);
  for (size_t t = 0; t < a.rows.size(); ++t) EXPECT_TRUE(testing::SameBits(a.rows[t], b.rows[t])) << "table " << t;
  EXPECT_EQ(a.pushes, 4);

  grpc::ClientContext ctx;
  StatsReply st;
  ASSERT_TRUE(stub->Stats(&ctx, StatsRequest{}, &st).ok());
  EXPECT_EQ(st.duplicate_pushes(), 4);
  EXPECT_EQ(st.pushes(), 4);
  EXPECT_EQ(st.rows_pushed(), 4 * 30);
  EXPECT_GT(st.push_rows_per_s(), 0);
}

// The duplicate check outlives the server process: a retry that reaches a restarted server
// (the first try was applied, the reply lost in the crash) is not applied again. Both the
// flushed state (clean restart) and the replayed push log (a crash: the folder copied while the
// server runs) remember it.
TEST(ShardServer, RetriedPushIsAppliedOnceAcrossRestarts) {
  const auto tables = ServiceTables();
  const std::string dir = shardrec::testing::TempDir("server-retry-restart");
  const auto vocab = testing::ServiceVocab(30, 8);
  std::mt19937_64 rng(10);
  const auto g1 = testing::RandomGrads(rng, 30 * 8), g2 = testing::RandomGrads(rng, 30 * 8);
  auto push = [&](ShardServer& server, uint64_t seq, const std::vector<float>& g) {
    PushRequest q = MakePush(0, "user", vocab, g);
    q.set_client_id("trainer-1");
    q.set_request_seq(seq);
    PushReply r;
    EXPECT_TRUE(Call(*RawStub(server.address()), q, &r).ok());
    return r.duplicate();
  };
  ShardStoreOptions so;
  so.dir = dir + "/shard";
  Snapshot after;
  {
    ShardServer server(tables, so, ShardServerOptions{});
    EXPECT_FALSE(push(server, 1, g1));
    EXPECT_FALSE(push(server, 2, g2));
    after = Take(server, tables, vocab);
    // A crash image: the folder as it is while the server runs (push log, no flush yet).
    fs::copy(so.dir, dir + "/crashed", fs::copy_options::recursive);
  }
  for (const std::string& folder : {so.dir, dir + "/crashed"}) {
    ShardStoreOptions o = so;
    o.dir = folder;
    ShardServer restarted(tables, o, ShardServerOptions{});
    EXPECT_TRUE(push(restarted, 2, g2)) << folder;  // the retry
    EXPECT_TRUE(push(restarted, 1, g1)) << folder;
    Snapshot now = Take(restarted, tables, vocab);
    for (size_t t = 0; t < now.rows.size(); ++t) EXPECT_TRUE(testing::SameBits(now.rows[t], after.rows[t])) << folder;
    EXPECT_FALSE(push(restarted, 3, g1)) << folder;  // new pushes still apply
  }
  fs::remove_all(dir);
}

TEST(ShardServer, DataDirStaysWithItsShard) {
  const auto tables = ServiceTables();
  const std::string dir = shardrec::testing::TempDir("ps-identity");
  ShardStoreOptions so;
  so.dir = dir + "/shard-0";
  so.cache_bytes = 1 << 20;
  ShardServerOptions o;
  o.shard_id = 0;
  o.num_shards = 2;
  { ShardServer s(tables, so, o); }
  o.shard_id = 1;
  try {
    ShardServer s(tables, so, o);
    ADD_FAILURE() << "served shard 0's folder as shard 1";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("holds shard 0 of 2"), std::string::npos) << e.what();
  }
  o.shard_id = 0;
  o.num_shards = 3;
  EXPECT_THROW(ShardServer(tables, so, o), UserError);
  // Other tables: the store refuses the folder.
  o.num_shards = 2;
  auto other = tables;
  other[1].dim = 4;
  EXPECT_THROW(ShardServer(other, so, o), std::runtime_error);
  { ShardServer s(tables, so, o); }  // still fine as itself
  fs::remove_all(dir);
}

TEST(ShardServer, BusyPortIsRefused) {
  const auto tables = ServiceTables();
  ShardServer a(tables, ShardStoreOptions{}, ShardServerOptions{});
  ShardServerOptions o;
  o.port = a.port();
  try {
    ShardServer b(tables, ShardStoreOptions{}, o);
    ADD_FAILURE() << "two servers on port " << a.port();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(a.port())), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace shardrec::ps
