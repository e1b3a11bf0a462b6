#pragma once
// Helpers for the multi-process communicator tests: run this test binary again as one rank
// (a hidden DISABLED_ test case), wait for all ranks with a deadline, kill them all on failure.
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace shardrec::dist::testing {

inline std::string SelfExe() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

// A fresh directory under /tmp, removed when this object goes.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/shardrec-comm-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Starts argv[0] with argv and the current environment plus `extra_env` ("K=V"), in its own
// process group, killed if this process dies.
inline pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env) {
  std::vector<std::string> env_store(extra_env);
  for (char** e = environ; e && *e; ++e) env_store.emplace_back(*e);
  std::vector<char*> envp, args;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_store(argv);
  for (auto& s : argv_store) args.push_back(s.data());
  args.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  setpgid(pid, pid);
  return pid;
}

struct ExitReport {
  bool all_ok = true;
  std::string text;  // per-process status, for failure messages
};

// Waits for every pid until `timeout`. When one fails or the deadline passes, the others (and
// their process groups, e.g. mpirun's ranks) are killed, so nothing is left behind.
inline ExitReport WaitAll(std::vector<pid_t> pids, std::chrono::milliseconds timeout) {
  ExitReport r;
  std::vector<bool> done(pids.size(), false);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t left = pids.size();
  bool kill_rest = false;
  while (left > 0) {
    bool progressed = false;
    for (size_t i = 0; i < pids.size(); ++i) {
      if (done[i]) continue;
      int status = 0;
      pid_t w = waitpid(pids[i], &status, WNOHANG);
      if (w == 0) continue;
      done[i] = true;
      --left;
      progressed = true;
      bool ok = w == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0;
      r.text += "process " + std::to_string(i) + ": " +
                (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status)) : "signal " + std::to_string(WTERMSIG(status))) + "\n";
      if (!ok) {
        r.all_ok = false;
        kill_rest = true;
      }
    }
    if (left > 0 && std::chrono::steady_clock::now() > deadline) {
      r.all_ok = false;
      r.text += "timeout after " + std::to_string(timeout.count()) + " ms\n";
      kill_rest = true;
    }
    if (kill_rest) {
      // SIGTERM first (mpirun then stops its ranks), SIGKILL after a short grace.
      for (size_t i = 0; i < pids.size(); ++i)
        if (!done[i]) kill(-pids[i], SIGTERM);
      for (size_t i = 0; i < pids.size(); ++i) {
        if (done[i]) continue;
        auto grace = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (waitpid(pids[i], nullptr, WNOHANG) == 0) {
          if (std::chrono::steady_clock::now() > grace) {
            kill(-pids[i], SIGKILL);
            waitpid(pids[i], nullptr, 0);
            break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        done[i] = true;
        --left;
        r.text += "process " + std::to_string(i) + ": killed\n";
      }
    }
    if (!progressed && left > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return r;
}

}  // namespace shardrec::dist::testing
