#include "cli/launch_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include "cli/train_command.h"
#include "common/error.h"
#include "config/config_loader.h"
#include "dist/accelerator.h"
#include "ps/auth_token.h"
#include "train/job_checkpoint.h"

namespace shardrec::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::atomic<int> g_stop_signal{0};
extern "C" void OnLauncherSignal(int sig) { g_stop_signal.store(sig); }

std::mutex g_print_mu;  // one line at a time on our stderr

// One process of the job: its pid, and a thread that prefixes its output lines.
struct Child {
  std::string name;  // "ps 0", "worker 1"
  pid_t pid = -1;
  int fd = -1;
  std::thread reader;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> tail;  // the last lines, for the failure message
  std::string address;           // PS: from its "listening on ADDR" line
  bool exited = false;
  int status = 0;

  void ReadLines() {
    std::string pending;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      pending.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) Line(pending.substr(start, nl - start));
      pending.erase(0, start);
    }
    if (!pending.empty()) Line(pending);
    ::close(fd);
  }

  void Line(std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // A progress bar redraws with '\r': keep its latest state only.
    if (size_t cr = line.rfind('\r'); cr != std::string::npos) line = line.substr(cr + 1);
    {
      std::lock_guard<std::mutex> l(g_print_mu);
      std::cerr << "[" << name << "] " << line << "\n" << std::flush;
    }
    std::lock_guard<std::mutex> l(mu);
    tail.push_back(line);
    if (tail.size() > 15) tail.pop_front();
    static const std::string kListening = "listening on ";
    if (address.empty() && line.rfind(kListening, 0) == 0) {
      address = line.substr(kListening.size());
      cv.notify_all();
    }
  }

  std::string Tail() {
    std::lock_guard<std::mutex> l(mu);
    std::string s;
    for (const std::string& t : tail) s += "    " + t + "\n";
    return s;
  }
};

std::string ExitText(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "stopped (status " + std::to_string(status) + ")";
}

std::string RandomToken() {
  std::ifstream in("/dev/urandom", std::ios::binary);
  unsigned char bytes[24];
  in.read(reinterpret_cast<char*>(bytes), sizeof(bytes));
  if (!in) throw UserError("cannot read /dev/urandom for the job's PS token");
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned char b : bytes) {
    s += hex[b >> 4];
    s += hex[b & 15];
  }
  return s;
}

class Job {
 public:
  explicit Job(double grace) : grace_s_(grace) {}
  ~Job() {
    StopAll();
    for (auto& c : children_)
      if (c->reader.joinable()) c->reader.join();
  }

  Child* Start(const std::string& name, const std::vector<std::string>& args, const std::vector<std::string>& env) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw UserError(std::string("pipe: ") + std::strerror(errno));
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) throw UserError(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      // The job's processes die with the launcher, even when it is killed with SIGKILL.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) _exit(127);
      ::dup2(fds[1], 1);
      ::dup2(fds[1], 2);
      for (const std::string& e : env) ::putenv(const_cast<char*>(e.c_str()));
      ::execv("/proc/self/exe", argv.data());
      const char* msg = "shardrec launch: exec failed\n";
      [[maybe_unused]] ssize_t n = ::write(2, msg, std::strlen(msg));
      _exit(127);
    }
    ::close(fds[1]);
    auto c = std::make_unique<Child>();
    c->name = name;
    c->pid = pid;
    c->fd = fds[0];
    Child* raw = c.get();
    c->reader = std::thread([raw] { raw->ReadLines(); });
    children_.push_back(std::move(c));
    return raw;
  }

  // Reaps exited children without blocking; returns the first one that exited since the last call.
  Child* Reap() {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return nullptr;
    for (auto& c : children_)
      if (c->pid == pid) {
        c->exited = true;
        c->status = status;
        return c.get();
      }
    return nullptr;
  }

  // SIGTERM to every live child, SIGKILL after the grace period; reaps them all.
  void StopAll(int sig = SIGTERM) {
    for (auto& c : children_)
      if (!c->exited) ::kill(c->pid, sig);
    const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(grace_s_ * 1000));
    while (Alive() > 0) {
      if (Clock::now() > deadline) {
        for (auto& c : children_)
          if (!c->exited) ::kill(c->pid, SIGKILL);
      }
      if (!Reap()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  int Alive() const {
    int n = 0;
    for (const auto& c : children_) n += !c->exited;
    return n;
  }

  std::vector<std::unique_ptr<Child>>& children() { return children_; }

 private:
  double grace_s_;
  std::vector<std::unique_ptr<Child>> children_;
};

void Say(const std::string& line) {
  std::lock_guard<std::mutex> l(g_print_mu);
  std::cerr << "shardrec launch: " << line << std::endl;
}

std::string ListOf(const std::vector<std::string>& items) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? "," : "") + items[i];
  return s + "]";
}

}  // namespace

CLI::App* AddLaunchCommand(CLI::App& app, LaunchCommandOptions* o) {
  auto* cmd = app.add_subcommand("launch", "Run a training job as PS servers + data-parallel workers on this machine");
  cmd->add_option("config", o->config_path, "job config (protobuf text format)")->required();
  cmd->add_option("--set", o->sets, "override a config field: field.path=value (repeatable)");
  cmd->add_option("--ps", o->num_ps, "parameter-server processes (one shard each)")->check(CLI::Range(1, 1024));
  cmd->add_option("--workers", o->num_workers, "worker processes (default: one per GPU, else 1)")->check(CLI::Range(0, 1024));
  cmd->add_option("--output-dir", o->output_dir, "where metrics.json, weights and checkpoints go (default: runs/<name>)");
  cmd->add_option("--resume", o->resume, "continue from this checkpoint (or the newest one in this folder)");
  cmd->add_option("--stop-grace", o->stop_grace_s, "seconds between SIGTERM and SIGKILL when the job is stopped");
  return cmd;
}

int RunLaunchCommand(const LaunchCommandOptions& o) {
  config::Job job = config::LoadJob(o.config_path, o.sets);  // bad configs fail here, before any process starts
  if (job.ps().addresses_size() > 0)
    throw ConfigError(o.config_path + ": field ps.addresses: the launcher starts its own servers; remove the addresses");
  const std::string out = o.output_dir.empty() ? DefaultOutputDir(job.name(), job.output_dir(), o.config_path) : o.output_dir;
  int workers = o.num_workers;
  const dist::AcceleratorInfo acc = dist::ProbeAccelerators();
  if (workers == 0) workers = acc.cuda_devices > 0 ? acc.cuda_devices : 1;
  fs::create_directories(out);

  std::string resume_folder;
  if (!o.resume.empty()) {
    resume_folder = fs::absolute(train::FindCheckpoint(o.resume)).string();
    train::ReadManifest(resume_folder);  // a damaged manifest fails here, naming the file
  }
  // Children inherit the user's token (file or environment), else get a fresh one for this job.
  std::vector<std::string> env_common;
  if (job.ps().token_file().empty() && std::getenv(ps::kPsTokenEnv) == nullptr)
    env_common.push_back(std::string(ps::kPsTokenEnv) + "=" + RandomToken());
  const std::string run_id = "launch-" + std::to_string(::getpid()) + "-" +
                             std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  const std::string rendezvous = fs::absolute(fs::path(out) / "rendezvous" / run_id).string();
  fs::create_directories(rendezvous);

  struct sigaction sa {};
  sa.sa_handler = OnLauncherSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  Job running(o.stop_grace_s);
  auto fail = [&](Child* c, const std::string& why) {
    Say(c ? c->name + " (pid " + std::to_string(c->pid) + ") " + why + "; stopping the job. Its last lines:\n" + c->Tail()
          : why + "; stopping the job");
    running.StopAll();
    return 1;
  };

  // Parameter servers: free ports, each its own shard folder.
  const fs::path ps_root = job.ps().has_data_dir() ? fs::path(job.ps().data_dir()) : fs::path(out) / "ps";
  std::vector<Child*> servers;
  for (int i = 0; i < o.num_ps; ++i) {
    const fs::path dir = ps_root / ("shard-" + std::to_string(i));
    std::vector<std::string> args = {"shardrec", "ps", "--config", o.config_path, "--shard-id", std::to_string(i),
                                     "--num-shards", std::to_string(o.num_ps), "--port", "0", "--data-dir", dir.string()};
    for (const std::string& s : o.sets) args.insert(args.end(), {"--set", s});
    if (!resume_folder.empty()) {
      args.insert(args.end(), {"--restore-from", (fs::path(resume_folder) / "ps" / ("shard-" + std::to_string(i))).string()});
    } else if (fs::exists(dir) && !fs::is_empty(dir)) {
      if (job.ps().has_data_dir())
        throw UserError("ps.data_dir " + dir.string() + " already holds parameter-server rows; remove it, name another folder, or --resume");
      fs::remove_all(dir);  // a new run starts from fresh tables
    }
    servers.push_back(running.Start("ps " + std::to_string(i), args, env_common));
    Say("ps " + std::to_string(i) + ": pid " + std::to_string(servers.back()->pid));
  }
  std::vector<std::string> addresses;
  for (Child* s : servers) {
    const auto deadline = Clock::now() + std::chrono::seconds(static_cast<int64_t>(job.ps().connect_timeout_s()) + 30);
    for (;;) {
      {
        std::unique_lock<std::mutex> l(s->mu);
        if (s->cv.wait_for(l, std::chrono::milliseconds(50), [&] { return !s->address.empty(); })) break;
      }
      if (Child* dead = running.Reap()) return fail(dead, ExitText(dead->status) + " while the servers were starting");
      if (g_stop_signal.load()) return fail(nullptr, strsignal(g_stop_signal.load()));
      if (Clock::now() > deadline) return fail(s, "did not start listening in time");
    }
    addresses.push_back(s->address);
  }
  Say(std::to_string(o.num_ps) + " PS shard(s) listening: " + ListOf(addresses) + "; starting " + std::to_string(workers) +
      " worker(s)");

  // Workers: intra-op threads split the cores unless the config says otherwise.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int r = 0; r < workers; ++r) {
    std::vector<std::string> args = {"shardrec", "train", o.config_path, "--output-dir", out};
    for (const std::string& s : o.sets) args.insert(args.end(), {"--set", s});
    args.insert(args.end(), {"--set", "ps.addresses=" + ListOf(addresses)});
    if (!job.trainer().has_num_threads())
      args.insert(args.end(), {"--set", "trainer.num_threads=" + std::to_string(std::max(1, cores / workers))});
    if (!resume_folder.empty()) args.insert(args.end(), {"--resume", resume_folder});
    std::vector<std::string> env = env_common;
    env.insert(env.end(), {"SHARDREC_RANK=" + std::to_string(r), "SHARDREC_WORLD_SIZE=" + std::to_string(workers),
                           "SHARDREC_LOCAL_RANK=" + std::to_string(r), "SHARDREC_RENDEZVOUS=" + rendezvous,
                           "SHARDREC_RUN_ID=" + run_id});
    if (acc.cuda_devices > 0) env.push_back("CUDA_VISIBLE_DEVICES=" + std::to_string(r % acc.cuda_devices));
    Child* c = running.Start("worker " + std::to_string(r), args, env);
    Say("worker " + std::to_string(r) + ": pid " + std::to_string(c->pid));
  }

  int finished = 0;
  while (finished < workers) {
    if (int sig = g_stop_signal.load()) {
      Say(std::string(strsignal(sig)) + ": stopping every process");
      running.StopAll();
      return 128 + sig;
    }
    Child* c = running.Reap();
    if (!c) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    const bool is_worker = c->name.rfind("worker", 0) == 0;
    if (!is_worker) return fail(c, ExitText(c->status) + " while the workers were training");
    if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) return fail(c, ExitText(c->status));
    ++finished;
  }
  Say("every worker finished; stopping the PS servers");
  running.StopAll();  // SIGTERM: the servers flush their rows and exit
  for (Child* s : servers)
    if (!WIFEXITED(s->status) || WEXITSTATUS(s->status) != 0) {
      Say(s->name + " " + ExitText(s->status) + " at shutdown. Its last lines:\n" + s->Tail());
      return 1;
    }
  fs::remove_all(rendezvous);
  return 0;
}

}  // namespace shardrec::cli
