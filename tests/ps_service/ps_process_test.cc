// `shardrec ps` as real processes: every push a client saw acknowledged survives kill -9 of its
// server; SIGTERM stops a server cleanly; bad configs and flags exit with code 2.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <deque>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "config/config_loader.h"
#include "data/feature_schema.h"
#include "ps/ps_client.h"
#include "ps/remote_ps_client.h"
#include "ps/routing.h"
#include "ps_service_test_util.h"
#include "test_util.h"

extern char** environ;

namespace shardrec::ps {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kBinary = std::string(SHARDREC_BINARY_DIR) + "/shardrec";

// Two tables of different dims and optimizers; a small row budget (evictions write back to
// RocksDB) and a small log limit (background flushes), so the kill can land anywhere.
const char* kConfig = R"(name: "ps-process-test"
data { synthetic { kind: CTR rows: 1000 } }
embedding { dim: 4 init { std: 0.1 } optimizer { kind: ADAM lr: 0.01 } }
tables { name: "wide" dim: 8 optimizer { kind: ADAGRAD lr: 0.05 } }
features { name: "I1" type: DENSE }
features { name: "C1" table: "wide" }
features { name: "C2" }
model { deepfm { fm_features: "C2" } }
ps { num_shards: 2 cache_bytes: 131072 flush_log_bytes: 1000000 }
)";

struct Process {
  pid_t pid = -1;
  int out = -1;  // read end of its stdout
  std::string address;
  std::string log;  // its stderr
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Starts `shardrec ps ARGS` and waits for its "listening on ADDR:PORT" line.
Process StartServer(const std::vector<std::string>& args, const std::string& log) {
  Process p;
  p.log = log;
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> argv_s = {kBinary, "ps"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = posix_spawn(&p.pid, kBinary.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) throw std::runtime_error("cannot start " + kBinary);
  p.out = fds[0];
  std::string got;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    pollfd pfd{p.out, POLLIN, 0};
    if (::poll(&pfd, 1, 200) <= 0) continue;
    char buf[256];
    const ssize_t n = ::read(p.out, buf, sizeof buf);
    if (n <= 0) break;  // the server ended
    got.append(buf, n);
    const size_t at = got.find("listening on ");
    const size_t eol = at == std::string::npos ? at : got.find('\n', at);
    if (eol != std::string::npos) {
      p.address = got.substr(at + 13, eol - at - 13);
      return p;
    }
  }
  ::kill(p.pid, SIGKILL);
  ::waitpid(p.pid, nullptr, 0);
  throw std::runtime_error("shardrec ps did not start; stdout: " + got + "; stderr: " + ReadFile(log));
}

// Waits for the process to end (up to `seconds`); returns its wait status, or -1 on timeout.
int WaitFor(Process& p, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (Clock::now() < deadline) {
    if (::waitpid(p.pid, &status, WNOHANG) == p.pid) {
      ::close(p.out);
      p.pid = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

void Kill(Process& p) {
  if (p.pid <= 0) return;
  ::kill(p.pid, SIGKILL);
  ::waitpid(p.pid, nullptr, 0);
  ::close(p.out);
  p.pid = -1;
}

struct Push {
  int table;
  std::vector<int64_t> ids;
  std::vector<float> grads;
};

Push MakePush(uint64_t index, const std::vector<TableSpec>& tables, const std::vector<int64_t>& vocab) {
  std::mt19937_64 rng(7919 * index + 3);
  Push p;
  p.table = static_cast<int>(rng() % tables.size());
  p.ids = testing::DrawIds(rng, vocab, 400);
  p.grads = testing::RandomGrads(rng, p.ids.size() * tables[p.table].dim);
  return p;
}

class PsProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = shardrec::testing::TempDir("ps-process");
    std::ofstream(dir_ + "/job.pbtxt") << kConfig;
    std::ofstream(dir_ + "/token") << "process-test-token\n";
    fs::permissions(dir_ + "/token", fs::perms::owner_read | fs::perms::owner_write);
    tables_ = data::BuildSchema(config::LoadJob(dir_ + "/job.pbtxt")).tables;
  }
  void TearDown() override {
    for (Process& p : procs_) Kill(p);
    fs::remove_all(dir_);
  }
  Process& Start(int shard, const std::string& tag, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--config", dir_ + "/job.pbtxt", "--shard-id", std::to_string(shard), "--num-shards",
                                     "2", "--data-dir", dir_ + "/data/shard-" + std::to_string(shard), "--port", "0",
                                     "--token-file", dir_ + "/token"};
    args.insert(args.end(), extra.begin(), extra.end());
    procs_.push_back(StartServer(args, dir_ + "/server-" + std::to_string(shard) + "-" + tag + ".log"));
    return procs_.back();
  }

  std::string dir_;
  std::vector<TableSpec> tables_;
  std::deque<Process> procs_;  // a deque: Start() hands out references that must stay valid
};

// A checkpoint taken through the client restores, via `shardrec ps --restore-from`, the rows of
// that moment, though the shards trained on after it.
TEST_F(PsProcess, RestoresFromACheckpoint) {
  RemotePsOptions ro;
  ro.token = "process-test-token";
  const auto vocab = testing::ServiceVocab(3000, 5);
  std::vector<std::vector<float>> at_checkpoint;
  {
    Process& s0 = Start(0, "a");
    Process& s1 = Start(1, "a");
    {
      RemotePsClient client({s0.address, s1.address}, tables_, ro);
      auto push_range = [&](uint64_t from, uint64_t to) {
        for (uint64_t b = from; b < to; ++b) {
          const Push p = MakePush(b, tables_, vocab);
          client.Push(p.table, p.ids.data(), static_cast<int64_t>(p.ids.size()), p.grads.data());
        }
      };
      push_range(0, 30);
      client.Checkpoint(dir_ + "/ckpt");
      for (int t = 0; t < static_cast<int>(tables_.size()); ++t) at_checkpoint.push_back(testing::ReadRows(client, t, vocab));
      push_range(30, 60);
      EXPECT_FALSE(testing::SameBits(testing::ReadRows(client, 0, vocab), at_checkpoint[0]));
    }
    for (Process* p : {&s0, &s1}) {
      ::kill(p->pid, SIGTERM);
      WaitFor(*p, 15);
    }
  }
  Process& r0 = Start(0, "b", {"--restore-from", dir_ + "/ckpt/shard-0"});
  Process& r1 = Start(1, "b", {"--restore-from", dir_ + "/ckpt/shard-1"});
  RemotePsClient client({r0.address, r1.address}, tables_, ro);
  for (int t = 0; t < static_cast<int>(tables_.size()); ++t)
    EXPECT_TRUE(testing::SameBits(testing::ReadRows(client, t, vocab), at_checkpoint[t])) << "table " << t;
}

TEST_F(PsProcess, AcknowledgedPushesSurviveKillMinus9) {
  ASSERT_EQ(tables_.size(), 2u);  // "wide" (dim 8, Adagrad) and C2 (dim 4, Adam)
  Process& s0 = Start(0, "a");
  Process& s1 = Start(1, "a");
  const std::string a0 = s0.address;
  RemotePsOptions ro;
  ro.token = "process-test-token";
  ro.max_attempts = 2;
  ro.initial_backoff_s = 0.05;
  ro.rpc_timeout_s = 10;
  const auto vocab = testing::ServiceVocab(20000, 71);
  std::vector<uint64_t> acked;
  int64_t in_flight = -1;
  {
    RemotePsClient client({s0.address, s1.address}, tables_, ro);
    // The kill lands at a random moment after pushing is well under way.
    std::atomic<bool> started{false};
    std::thread killer([&] {
      while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      std::mt19937 rng(static_cast<unsigned>(Clock::now().time_since_epoch().count()));
      std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 500));
      ::kill(s1.pid, SIGKILL);
    });
    for (uint64_t b = 0; b < 1000000; ++b) {
      const Push p = MakePush(b, tables_, vocab);
      try {
        client.Push(p.table, p.ids.data(), static_cast<int64_t>(p.ids.size()), p.grads.data());
      } catch (const std::runtime_error& e) {
        in_flight = static_cast<int64_t>(b);
        EXPECT_NE(std::string(e.what()).find("PS shard 1 at " + s1.address + " is unreachable"), std::string::npos)
            << e.what();
        break;
      }
      acked.push_back(b);
      if (b == 10) started = true;
    }
    killer.join();
  }
  const int status = WaitFor(s1, 10);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  ASSERT_GE(in_flight, 0);
  ASSERT_GT(acked.size(), 10u);

  Process& s1b = Start(1, "b");  // same folder: replays its push log
  RemotePsClient client({a0, s1b.address}, tables_, ro);

  // What the acknowledged pushes make (A), and A plus the push in flight at the kill (B).
  auto a = MakeInProcessPs(tables_, InProcessOptions{2});
  auto b = MakeInProcessPs(tables_, InProcessOptions{2});
  for (uint64_t i : acked) {
    const Push p = MakePush(i, tables_, vocab);
    a->Push(p.table, p.ids.data(), static_cast<int64_t>(p.ids.size()), p.grads.data());
    b->Push(p.table, p.ids.data(), static_cast<int64_t>(p.ids.size()), p.grads.data());
  }
  const Push lost = MakePush(static_cast<uint64_t>(in_flight), tables_, vocab);
  b->Push(lost.table, lost.ids.data(), static_cast<int64_t>(lost.ids.size()), lost.grads.data());

  // Every row is A's; only the in-flight push's table may be B's instead, all or nothing per shard.
  std::string landed;
  for (int t = 0; t < static_cast<int>(tables_.size()); ++t) {
    const int dim = tables_[t].dim;
    const auto got = testing::ReadRows(client, t, vocab), ra = testing::ReadRows(*a, t, vocab),
               rb = testing::ReadRows(*b, t, vocab);
    for (int s = 0; s < 2; ++s) {
      bool is_a = true, is_b = true;
      int64_t rows = 0;
      for (size_t i = 0; i < vocab.size(); ++i) {
        if (ShardOf(t, vocab[i], 2) != static_cast<uint32_t>(s)) continue;
        ++rows;
        is_a = is_a && std::memcmp(&got[i * dim], &ra[i * dim], dim * sizeof(float)) == 0;
        is_b = is_b && std::memcmp(&got[i * dim], &rb[i * dim], dim * sizeof(float)) == 0;
      }
      EXPECT_GT(rows, 0);
      if (t == lost.table) landed += (s ? "," : "") + std::string(" shard ") + std::to_string(s) + (is_a ? ": not applied" : ": applied");
      EXPECT_TRUE(is_a || (t == lost.table && is_b))
          << "table " << t << " shard " << s << ": rows are neither the acknowledged pushes nor those plus the one in flight ("
          << acked.size() << " acknowledged)";
    }
  }
  std::printf("  killed shard 1 after %zu acknowledged pushes; the push in flight:%s\n", acked.size(), landed.c_str());

  // SIGTERM: a clean, prompt exit.
  for (Process* p : {&s0, &s1b}) {
    ASSERT_EQ(::kill(p->pid, SIGTERM), 0);
    const std::string log = p->log;
    const int st = WaitFor(*p, 15);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << "\n" << ReadFile(log);
    EXPECT_NE(ReadFile(log).find("stopped"), std::string::npos) << ReadFile(log);
  }
}

struct CliResult {
  int code;
  std::string output;
};

CliResult RunPs(const std::string& args) {
  const std::string cmd = kBinary + " ps " + args + " 2>&1";
  CliResult r{-1, ""};
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  while (p && fgets(buf.data(), buf.size(), p)) r.output += buf.data();
  const int status = p ? pclose(p) : -1;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST_F(PsProcess, ConfigErrorsExitTwo) {
  std::ofstream(dir_ + "/bad.pbtxt") << "name: \"x\"\ndata { synthetic { rows: 100 } }\n"
                                        "features { name: \"C1\" table: \"missing\" }\nmodel { deepfm { } }\n";
  CliResult r = RunPs("--config " + dir_ + "/bad.pbtxt --shard-id 0 --port 0 --data-dir " + dir_ + "/d");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.pbtxt:3:"), std::string::npos) << r.output;
  r = RunPs("--config " + dir_ + "/job.pbtxt --shard-id 2 --num-shards 2 --port 0 --data-dir " + dir_ + "/d");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--shard-id 2: must be in [0, 2)"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ + "/d"));
}

}  // namespace
}  // namespace shardrec::ps
