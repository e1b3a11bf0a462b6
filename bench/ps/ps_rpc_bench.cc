// ps_rpc_bench: what the gRPC service costs. One PS shard called in-process (MakeInProcessPs, one
// shard, no RPC) against the same shard behind a ShardServer on loopback, called through
// RemotePsClient: Pull and Push rows/s of batches of distinct ids, for each embedding dim and each
// store kind (memory only; RocksDB-backed with the push log, as `shardrec ps` runs it). Both sides
// get the same tables (Adam rows), the same warm rows, the same id batches and gradients; their
// rounds are interleaved so that load changes on a shared machine hit both. Prints a markdown
// table with remote / in-process (the service overhead: serialization, loopback gRPC, the server's
// checks and copies).
//
//   build/bench/ps_rpc_bench [--dims 16,64] [--batch 4096] [--warm-rows 200000] [--seconds 1.5]
//                            [--rounds 3] [--stores memory,rocksdb] [--cache-bytes N]
//                            [--flush-log-bytes N] [--settle-seconds 10] [--workdir DIR]
//                            [--keep-workdir] [--server-bin build/shardrec]
//
// See bench/README.md for what each column means.
//
// By default the server runs in this process (ShardServer on 127.0.0.1:0). With --server-bin it is
// a real `shardrec ps` process (started with a generated config, stopped with SIGTERM); its CPU
// time is then read from /proc and added to the CPU figures (of both sides: each window counts the
// CPU of everything under test, background threads included).
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/process_tuning.h"
#include "ps/ps_client.h"
#include "ps/remote_ps_client.h"
#include "ps/shard_server.h"
#include "ps/table_spec.h"

namespace {

namespace fs = std::filesystem;
using shardrec::ps::PsClient;
using shardrec::ps::TableSpec;
using Clock = std::chrono::steady_clock;

struct Flags {
  std::vector<int> dims = {16, 64};
  int batch = 4096;
  int64_t warm_rows = 200000;
  double seconds = 1.5;  // per (store, dim, op, side), split over the rounds
  int rounds = 3;
  std::vector<std::string> stores = {"memory", "rocksdb"};
  std::string workdir;
  std::string server_bin;
  int64_t cache_bytes = int64_t{2} << 30;  // RocksDB stores: every warm row fits
  // RocksDB stores: push-log size that starts a background write-back of dirty rows. Default:
  // never within a run, so that the timed calls are the per-call path (log append + cached rows).
  int64_t flush_log_bytes = int64_t{1} << 40;
  // RocksDB stores: most seconds to wait for background work (compactions) after the untimed flush
  // before a window.
  double settle_seconds = 10;
  bool keep_workdir = false;
};

const char* kUsage =
    "usage: ps_rpc_bench [--dims 16,64] [--batch 4096] [--warm-rows 200000] [--seconds 1.5] [--rounds 3]\n"
    "                    [--stores memory,rocksdb] [--cache-bytes 2147483648] [--flush-log-bytes N] [--settle-seconds 10]\n"
    "                    [--workdir DIR] [--keep-workdir] [--server-bin PATH/shardrec]\n"
    "  --seconds      timed seconds per (store, dim, op, side), split over --rounds interleaved rounds\n"
    "  --cache-bytes  row cache of the RocksDB-backed stores (default: all warm rows fit)\n"
    "  --flush-log-bytes  push-log size that starts a write-back to RocksDB (default 2^40: none in a run;\n"
    "                 the stores' own default is 268435456). Every window starts with both stores flushed\n"
    "  --settle-seconds  after that flush, wait up to this long for the process(es) to go idle (default 10)\n"
    "  --server-bin   serve the shard from a real `shardrec ps` process instead of this process\n";

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], v;
    const size_t eq = a.find('=');
    bool has_value = false;
    if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_value = true;
    }
    auto value = [&]() -> std::string {
      if (has_value) return v;
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (a == "--dims") {
      f.dims.clear();
      for (const auto& d : Split(value())) f.dims.push_back(std::stoi(d));
    } else if (a == "--batch") {
      f.batch = std::stoi(value());
    } else if (a == "--warm-rows") {
      f.warm_rows = std::stoll(value());
    } else if (a == "--seconds") {
      f.seconds = std::stod(value());
    } else if (a == "--rounds") {
      f.rounds = std::stoi(value());
    } else if (a == "--stores") {
      f.stores = Split(value());
    } else if (a == "--cache-bytes") {
      f.cache_bytes = std::stoll(value());
    } else if (a == "--flush-log-bytes") {
      f.flush_log_bytes = std::stoll(value());
    } else if (a == "--settle-seconds") {
      f.settle_seconds = std::stod(value());
    } else if (a == "--workdir") {
      f.workdir = value();
    } else if (a == "--keep-workdir") {
      f.keep_workdir = true;
    } else if (a == "--server-bin") {
      f.server_bin = value();
    } else {
      throw std::invalid_argument("unknown flag " + a + "\n" + kUsage);
    }
  }
  if (f.dims.empty() || f.batch < 1 || f.warm_rows < f.batch || f.seconds <= 0 || f.rounds < 1 ||
      f.cache_bytes < 1 || f.flush_log_bytes < 1)
    throw std::invalid_argument(
        "need dims, batch >= 1, warm-rows >= batch, seconds > 0, rounds >= 1, cache-bytes and flush-log-bytes > 0");
  for (const auto& s : f.stores)
    if (s != "memory" && s != "rocksdb") throw std::invalid_argument("--stores: memory and/or rocksdb, got " + s);
  for (int d : f.dims)
    if (d < 1) throw std::invalid_argument("--dims: must be >= 1");
  return f;
}

// CPU seconds (user + system) of this process, all threads.
double SelfCpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// CPU seconds of another process (0 when pid <= 0 or unreadable).
double ProcCpu(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  // Fields after "(comm)": state is #3; utime #14, stime #15.
  std::vector<std::string> v;
  while (rest >> field) v.push_back(field);
  if (v.size() < 13) return 0;
  return (std::stod(v[11]) + std::stod(v[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::vector<TableSpec> Tables(const std::vector<int>& dims) {
  // Defaults of TableSpec = defaults of the config (N(0, 1e-4), seed 2022, Adam lr 1e-3), so a
  // `shardrec ps` started from the config written by WriteServerConfig serves these very tables.
  std::vector<TableSpec> t;
  for (int d : dims) {
    TableSpec s;
    s.name = "t" + std::to_string(d);
    s.dim = d;
    t.push_back(s);
  }
  return t;
}

std::string WriteServerConfig(const std::string& dir, const std::vector<int>& dims) {
  const std::string path = (fs::path(dir) / "ps_rpc_bench.pbtxt").string();
  std::ofstream out(path);
  out << "# Written by ps_rpc_bench: the tables it benchmarks (one feature, hence one table, per dim).\n"
         "name: \"ps_rpc_bench\"\n"
         "data { synthetic { kind: CTR rows: 1000 } }\n"
         "embedding { dim: 16 init { kind: NORMAL std: 0.0001 } optimizer { kind: ADAM lr: 0.001 } }\n";
  for (int d : dims) out << "features { name: \"t" << d << "\" dim: " << d << " }\n";
  out << "model { wide_deep { } }\n"
         "ps { num_shards: 1 }\n";
  if (!out) throw std::runtime_error("cannot write " + path);
  return path;
}

// A `shardrec ps` child: started with --port 0, its address read from the "listening on" line.
class ServerProcess {
 public:
  ServerProcess(const std::string& bin, const std::string& config, const std::string& data_dir, int64_t cache_bytes,
                int64_t flush_log_bytes, const std::string& log_path) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    std::vector<std::string> args = {bin, "ps", "--config", config, "--shard-id", "0", "--port", "0"};
    if (data_dir.empty()) {
      args.insert(args.end(), {"--set", "ps.memory_only=true"});
    } else {
      args.insert(args.end(), {"--data-dir", data_dir, "--cache-bytes", std::to_string(cache_bytes), "--set",
                               "ps.flush_log_bytes=" + std::to_string(flush_log_bytes)});
    }
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      FILE* log = std::fopen(log_path.c_str(), "w");
      if (log) dup2(fileno(log), STDERR_FILENO);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      std::perror("execv");
      _exit(127);
    }
    close(fds[1]);
    FILE* in = fdopen(fds[0], "r");
    char line[512];
    while (in && std::fgets(line, sizeof line, in)) {
      std::string l(line);
      if (l.rfind("listening on ", 0) == 0) {
        address_ = l.substr(13);
        while (!address_.empty() && (address_.back() == '\n' || address_.back() == '\r')) address_.pop_back();
        break;
      }
    }
    stdout_ = in;  // keep the pipe open: the server writes nothing more, but must not get SIGPIPE
    if (address_.empty()) {
      Stop();
      throw std::runtime_error("`" + bin + " ps` did not print 'listening on' (see " + log_path + ")");
    }
  }
  ~ServerProcess() { Stop(); }
  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (stdout_) {
      std::fclose(stdout_);
      stdout_ = nullptr;
    }
  }

 private:
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
  std::string address_;
};

// One side: a PsClient (and what serves it).
struct Side {
  std::string name;
  std::unique_ptr<shardrec::ps::ShardServer> server;  // in-process server (remote side)
  std::unique_ptr<ServerProcess> process;             // or a `shardrec ps` child
  std::unique_ptr<PsClient> client;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string Commas(double x) {
  std::string s = std::to_string(static_cast<int64_t>(x + 0.5));
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string Fixed(double x, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, x);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  shardrec::TuneMalloc();
  Flags f;
  try {
    f = ParseFlags(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "ps_rpc_bench: " << e.what() << "\n";
    return 2;
  }
  const bool own_workdir = f.workdir.empty();
  if (own_workdir) {
    char tmpl[] = "/tmp/ps_rpc_bench.XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::perror("mkdtemp");
      return 1;
    }
    f.workdir = tmpl;
  }
  fs::create_directories(f.workdir);

  try {
    const std::vector<TableSpec> tables = Tables(f.dims);
    const std::string config = f.server_bin.empty() ? "" : WriteServerConfig(f.workdir, f.dims);

    // Warm ids: distinct random int64s; batches are consecutive slices of a shuffled copy, so the
    // ids of a batch are distinct, and every call touches rows spread over the whole warm set.
    std::mt19937_64 rng(12345);
    std::vector<int64_t> vocab(static_cast<size_t>(f.warm_rows));
    for (int64_t i = 0; i < f.warm_rows; ++i) vocab[i] = static_cast<int64_t>(rng());
    std::sort(vocab.begin(), vocab.end());
    vocab.erase(std::unique(vocab.begin(), vocab.end()), vocab.end());
    std::vector<int64_t> order = vocab;
    std::shuffle(order.begin(), order.end(), rng);
    const int64_t num_batches = static_cast<int64_t>(order.size()) / f.batch;
    const int max_dim = *std::max_element(f.dims.begin(), f.dims.end());
    std::vector<float> grads(static_cast<size_t>(f.batch) * max_dim);
    std::normal_distribution<float> g(0.f, 1e-3f);
    for (float& x : grads) x = g(rng);
    std::vector<float> out(static_cast<size_t>(f.batch) * max_dim);

    std::cout << "ps_rpc_bench: 1 shard, " << f.batch << " distinct ids per call, " << Commas(vocab.size())
              << " warm rows per table, Adam rows; server "
              << (f.server_bin.empty() ? "in this process (ShardServer on 127.0.0.1:0)"
                                       : "`" + f.server_bin + " ps` (a separate process)")
              << "; " << f.rounds << " interleaved rounds of " << Fixed(f.seconds / f.rounds, 2)
              << " s per cell; medians";
    if (std::find(f.stores.begin(), f.stores.end(), "rocksdb") != f.stores.end())
      std::cout << "; RocksDB stores: every window starts flushed, "
                << (f.flush_log_bytes >= (int64_t{1} << 40) ? std::string("no write-back within a window")
                                                            : "write-back every " + Commas(f.flush_log_bytes) + " log bytes");
    std::cout << "\n\n";
    std::cout << "| store | dim | op | in-process rows/s | remote rows/s | remote / in-process | ms per call (in-process / "
                 "remote) | CPU us per row (in-process / remote) |\n"
                 "|---|---:|---|---:|---:|---:|---|---|\n";
    std::cout.flush();

    for (const std::string& store : f.stores) {
      const bool disk = store == "rocksdb";
      Side local, remote;
      local.name = "in-process";
      remote.name = "remote";
      const std::string server_dir = disk ? (fs::path(f.workdir) / "server-rocksdb").string() : "";
      if (disk) {  // fresh stores, also in a --workdir kept from an earlier run
        fs::remove_all(fs::path(f.workdir) / "inproc-rocksdb");
        fs::remove_all(server_dir);
      }
      {
        shardrec::ps::InProcessOptions o(1);
        if (disk) o.data_dir = (fs::path(f.workdir) / "inproc-rocksdb").string();
        o.cache_bytes = f.cache_bytes;
        o.log_pushes = true;  // as the server's store: every push logged before it returns
        o.flush_log_bytes = f.flush_log_bytes;
        local.client = shardrec::ps::MakeInProcessPs(tables, o);
      }
      if (f.server_bin.empty()) {
        shardrec::ps::ShardStoreOptions so;
        so.dir = server_dir;
        so.cache_bytes = f.cache_bytes;
        so.log_pushes = true;
        so.flush_log_bytes = f.flush_log_bytes;
        shardrec::ps::ShardServerOptions sv;
        sv.port = 0;
        remote.server = std::make_unique<shardrec::ps::ShardServer>(tables, so, sv);
        remote.client = std::make_unique<shardrec::ps::RemotePsClient>(
            std::vector<std::string>{remote.server->address()}, tables);
      } else {
        remote.process = std::make_unique<ServerProcess>(f.server_bin, config, server_dir, f.cache_bytes, f.flush_log_bytes,
                                                         (fs::path(f.workdir) / ("server-" + store + ".log")).string());
        remote.client = std::make_unique<shardrec::ps::RemotePsClient>(
            std::vector<std::string>{remote.process->address()}, tables);
      }
      Side* sides[2] = {&local, &remote};
      // CPU of everything under test, for both sides alike: this process (caller, in-process store,
      // in-process server, background threads of both stores) plus a `shardrec ps` child.
      auto cpu_now = [&] { return SelfCpu() + (remote.process ? ProcCpu(remote.process->pid()) : 0); };
      // Before each timed window: both stores flushed (a checkpoint flushes the shard and waits for
      // a background flush in progress; it is deleted again), then up to --settle-seconds until
      // everything under test is idle (RocksDB compacts the flushed files in the background), so
      // that work started by one side never runs in the other side's window. Untimed; only for
      // stores pushed to since their last flush. Memory-only stores: nothing to do.
      int settles = 0;
      bool dirty[2] = {true, true};  // the warm-up pushes
      auto settle = [&] {
        if (!disk) return;
        bool flushed = false;
        for (int k = 0; k < 2; ++k) {
          if (!dirty[k]) continue;
          const fs::path dir = fs::path(f.workdir) / ("settle-" + std::to_string(settles++));
          sides[k]->client->Checkpoint(dir.string());
          fs::remove_all(dir);
          dirty[k] = false;
          flushed = true;
        }
        if (!flushed) return;
        const Clock::time_point start = Clock::now();
        double c = cpu_now();
        int idle = 0;  // consecutive idle 100 ms ticks (under 10% of a core)
        while (idle < 5 && std::chrono::duration<double>(Clock::now() - start).count() < f.settle_seconds) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          const double c2 = cpu_now();
          idle = c2 - c < 0.01 ? idle + 1 : 0;
          c = c2;
        }
        if (std::getenv("PS_RPC_BENCH_DEBUG"))  // how long settling takes
          std::cerr << "settle: idle after " << std::chrono::duration<double>(Clock::now() - start).count() << " s\n";
      };

      // Warm: every row created (pull) and given Adam state (push), on both sides; untimed.
      for (Side* s : sides) {
        for (size_t t = 0; t < tables.size(); ++t) {
          for (int64_t b = 0; b < num_batches; ++b) {
            const int64_t* ids = order.data() + b * f.batch;
            s->client->Pull(static_cast<int>(t), ids, f.batch, out.data());
            s->client->Push(static_cast<int>(t), ids, f.batch, grads.data());
          }
          const int64_t rest = static_cast<int64_t>(order.size()) - num_batches * f.batch;
          if (rest > 0) {
            s->client->Pull(static_cast<int>(t), order.data() + num_batches * f.batch, rest, out.data());
            s->client->Push(static_cast<int>(t), order.data() + num_batches * f.batch, rest, grads.data());
          }
        }
      }

      // Pulls of every table first (they dirty nothing), then pushes.
      for (const char* op : {"pull", "push"}) {
        for (size_t t = 0; t < tables.size(); ++t) {
          const bool push = std::string(op) == "push";
          std::vector<double> rate[2], cpu[2];
          int64_t cursor[2] = {0, 0};
          for (int r = 0; r < f.rounds; ++r) {
            for (int k = 0; k < 2; ++k) {
              const int which = (r % 2 == 0) ? k : 1 - k;  // alternate who goes first
              Side& s = *sides[which];
              const double budget = f.seconds / f.rounds;
              settle();
              int64_t rows = 0;
              const double c0 = cpu_now();
              const Clock::time_point t0 = Clock::now();
              double elapsed = 0;
              do {
                const int64_t* ids = order.data() + (cursor[which]++ % num_batches) * f.batch;
                if (push)
                  s.client->Push(static_cast<int>(t), ids, f.batch, grads.data());
                else
                  s.client->Pull(static_cast<int>(t), ids, f.batch, out.data());
                rows += f.batch;
                elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
              } while (elapsed < budget);
              const double c1 = cpu_now();
              if (push) dirty[which] = true;
              rate[which].push_back(rows / elapsed);
              cpu[which].push_back(1e6 * (c1 - c0) / rows);
            }
          }
          const double lr = Median(rate[0]), rr = Median(rate[1]);
          const double lc = Median(cpu[0]), rc = Median(cpu[1]);
          std::cout << "| " << (disk ? "RocksDB + push log" : "memory only") << " | " << tables[t].dim << " | " << op
                    << " | " << Commas(lr) << " | " << Commas(rr) << " | " << Fixed(rr / lr, 2) << "x | "
                    << Fixed(1e3 * f.batch / lr, 2) << " / " << Fixed(1e3 * f.batch / rr, 2) << " | " << Fixed(lc, 3)
                    << " / " << Fixed(rc, 3) << " |\n";
          std::cout.flush();
        }
      }
      remote.client.reset();
      if (remote.server) remote.server->Shutdown(1);
      remote.server.reset();
      remote.process.reset();
      local.client.reset();
    }
  } catch (const std::exception& e) {
    std::cerr << "ps_rpc_bench: " << e.what() << "\n";
    if (own_workdir && !f.keep_workdir) fs::remove_all(f.workdir);
    return 1;
  }
  if (own_workdir && !f.keep_workdir) {
    fs::remove_all(f.workdir);
  } else {
    std::cout << "\n(workdir kept: " << f.workdir << ")\n";
  }
  return 0;
}
