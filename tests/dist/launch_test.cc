// Multi-process training with the real binary: `shardrec launch` (PS servers + gloo workers) and
// mpirun (PS ranks + MPI workers), against single-process training; the launcher's failure
// handling; checkpoint + resume after a killed worker.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <torch/torch.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "config/config_loader.h"
#include "data/feature_schema.h"
#include "models/model.h"
#include "shardrec/config.pb.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kBinary = std::string(SHARDREC_BINARY_DIR) + "/shardrec";
const std::string kConfig = std::string(SHARDREC_SOURCE_DIR) + "/configs/deepfm.pbtxt";

struct ProcessRun {
  int code = -1;  // exit code, or 128 + signal
  std::string output;
  double seconds = 0;
};

// Runs argv with stdout+stderr captured; `on_line` sees each output line as it comes (and may
// act on the process, e.g. kill one of its children). Killed (with its process group) at the
// deadline.
ProcessRun Exec(const std::vector<std::string>& argv, std::chrono::seconds deadline,
         const std::function<void(const std::string&, pid_t)>& on_line = nullptr) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe");
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const auto start = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  ProcessRun r;
  std::string pending;
  char buf[4096];
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(start + deadline - Clock::now()).count());
    if (left <= 0) {
      kill(-pid, SIGKILL);
      r.output += "\n[test: deadline passed, killed]\n";
      break;
    }
    if (poll(&p, 1, left) <= 0) continue;
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      r.output += line + "\n";
      if (on_line) on_line(line, pid);
    }
  }
  r.output += pending;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

// DeepFM on generated CTR data, small enough for a 2-core CI machine. `exact`: a setting where
// W workers with batch B must equal one worker with batch W*B (no batch norm, no dropout, SGD
// rows, file order).
std::vector<std::string> Sets(const std::string& out, int rows, bool exact) {
  std::vector<std::string> s = {"data.synthetic.rows=" + std::to_string(rows), "data.synthetic.dir=" + out + "/../data",
                                "trainer.progress=LINES", "trainer.log_every=1000", "trainer.eval_batch_size=4096",
                                "ps.num_shards=2", "trainer.early_stopping_patience=0"};
  if (exact) {
    for (const char* e : {"model.deepfm.mlp.batch_norm=false", "model.deepfm.mlp.dropout=0", "embedding.optimizer.kind=SGD",
                          "embedding.optimizer.lr=0.05", "data.shuffle_buffer=0", "trainer.epochs=1",
                          "trainer.checkpoints=false", "data.validation_fraction=0", "data.test_fraction=0"})
      s.push_back(e);
  }
  return s;
}

std::vector<std::string> WithSets(std::vector<std::string> argv, const std::vector<std::string>& sets) {
  for (const std::string& s : sets) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  return argv;
}

// The dense weights a run saved, by parameter name.
std::map<std::string, torch::Tensor> DenseWeights(const std::string& run_dir, const std::vector<std::string>& sets) {
  shardrec::config::Job job = shardrec::config::LoadJob(kConfig, sets);
  shardrec::data::FeatureSchema schema = shardrec::data::BuildSchema(job);
  auto model = shardrec::models::CreateModel(job.model(), schema);
  torch::serialize::InputArchive a;
  a.load_from(run_dir + "/dense.pt");
  model->load(a);
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : model->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

double MaxDiff(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  double d = 0;
  for (const auto& [k, v] : a) d = std::max(d, (v - b.at(k)).abs().max().item<double>());
  return d;
}

double JsonNumber(const std::string& file, const std::string& section, const std::string& key) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const size_t at = text.find("\"" + section + "\": {");
  if (at == std::string::npos) return NAN;
  std::smatch m;
  const std::string rest = text.substr(at, text.find('}', at) - at);
  if (!std::regex_search(rest, m, std::regex("\"" + key + "\": ([-0-9.eE]+)"))) return NAN;
  return std::stod(m[1]);
}

class LaunchTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = shardrec::testing::TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name()); }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  std::string dir_;
};

TEST_F(LaunchTest, TwoGlooWorkersEqualOneWorkerWithTheDoubleBatch) {
  const int steps = 6;
  auto sets = [&](const std::string& out, int batch) {
    std::vector<std::string> s = Sets(out, 12000, true);
    s.push_back("trainer.batch_size=" + std::to_string(batch));
    s.push_back("trainer.max_steps_per_epoch=" + std::to_string(steps));
    return s;
  };
  const std::string one = dir_ + "/one", two = dir_ + "/two", half = dir_ + "/half";
  ProcessRun a = Exec(WithSets({kBinary, "train", kConfig, "--output-dir", one}, sets(one, 512)), std::chrono::seconds(120));
  ASSERT_EQ(a.code, 0) << a.output;
  ProcessRun b = Exec(WithSets({kBinary, "launch", "--ps", "1", "--workers", "2", kConfig, "--output-dir", two}, sets(two, 256)),
               std::chrono::seconds(120));
  ASSERT_EQ(b.code, 0) << b.output;
  EXPECT_NE(b.output.find("[worker 1]"), std::string::npos) << "log lines carry role and rank\n" << b.output;
  ProcessRun c = Exec(WithSets({kBinary, "train", kConfig, "--output-dir", half}, sets(half, 256)), std::chrono::seconds(120));
  ASSERT_EQ(c.code, 0) << c.output;

  const auto w1 = DenseWeights(one, sets(one, 512)), w2 = DenseWeights(two, sets(two, 256)), wh = DenseWeights(half, sets(half, 256));
  // The same global batches: equal up to float summation order.
  EXPECT_LT(MaxDiff(w1, w2), 2e-5);
  // A single worker with half the batch took other steps: the comparison can tell.
  EXPECT_GT(MaxDiff(w1, wh), 1e-3);
}

TEST_F(LaunchTest, MpiWorkersWithPsRanksEqualOneWorkerWithTheDoubleBatch) {
  const std::string mpirun = "/usr/bin/mpirun";
  if (access(mpirun.c_str(), X_OK) != 0) GTEST_SKIP() << mpirun << " not found: install openmpi-bin to run the MPI test";
  const int steps = 6;
  auto sets = [&](const std::string& out, int batch) {
    std::vector<std::string> s = Sets(out, 12000, true);
    s.push_back("trainer.batch_size=" + std::to_string(batch));
    s.push_back("trainer.max_steps_per_epoch=" + std::to_string(steps));
    return s;
  };
  const std::string one = dir_ + "/one", mpi = dir_ + "/mpi";
  ProcessRun a = Exec(WithSets({kBinary, "train", kConfig, "--output-dir", one}, sets(one, 512)), std::chrono::seconds(120));
  ASSERT_EQ(a.code, 0) << a.output;
  std::vector<std::string> mpi_sets = sets(mpi, 256);
  mpi_sets.insert(mpi_sets.end(), {"dist.num_ps=1", "dist.backend=MPI", "trainer.num_threads=1"});
  ProcessRun b = Exec(WithSets({mpirun, "--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader", "-np", "3", kBinary,
                         "train", kConfig, "--output-dir", mpi},
                        mpi_sets),
               std::chrono::seconds(180));
  ASSERT_EQ(b.code, 0) << b.output;
  EXPECT_LT(MaxDiff(DenseWeights(one, sets(one, 512)), DenseWeights(mpi, sets(mpi, 256))), 2e-5);
}

TEST_F(LaunchTest, KilledWorkerStopsTheJobNamingIt) {
  const std::string out = dir_ + "/run";
  std::vector<std::string> s = Sets(out, 60000, false);
  s.insert(s.end(), {"trainer.epochs=50", "trainer.batch_size=256", "trainer.log_every=10"});
  pid_t victim = -1;
  Clock::time_point killed_at;
  ProcessRun r = Exec(WithSets({kBinary, "launch", "--ps", "1", "--workers", "2", kConfig, "--output-dir", out, "--stop-grace", "3"}, s),
               std::chrono::seconds(180), [&](const std::string& line, pid_t) {
                 static const std::regex pid_line("worker 1: pid ([0-9]+)");
                 std::smatch m;
                 if (victim < 0 && std::regex_search(line, m, pid_line)) victim = std::stoi(m[1]);
                 // Kill it once training runs (the first progress line of worker 0).
                 if (victim > 0 && killed_at == Clock::time_point() && line.find("[worker 0]") != std::string::npos &&
                     line.find("epoch 1/50") != std::string::npos) {
                   kill(victim, SIGKILL);
                   killed_at = Clock::now();
                 }
               });
  ASSERT_GT(victim, 0) << r.output;
  ASSERT_NE(killed_at, Clock::time_point()) << "training never started\n" << r.output;
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("worker 1 (pid " + std::to_string(victim) + ") was killed by signal 9"), std::string::npos) << r.output;
  const double stop_s = std::chrono::duration<double>(Clock::now() - killed_at).count();
  EXPECT_LT(stop_s, 15) << r.output;
}

}  // namespace

namespace {

double ValidationAuc(const std::string& run_dir) { return JsonNumber(run_dir + "/metrics.json", "validation", "auc"); }

TEST_F(LaunchTest, MpirunTwoPsTwoWorkersMatchesSingleProcessAuc) {
  const std::string mpirun = "/usr/bin/mpirun";
  if (access(mpirun.c_str(), X_OK) != 0) GTEST_SKIP() << mpirun << " not found: install openmpi-bin to run the MPI test";
  const std::string single = dir_ + "/single", mpi = dir_ + "/mpi";
  std::vector<std::string> s1 = Sets(single, 60000, false), s2 = Sets(mpi, 60000, false);
  s1.insert(s1.end(), {"trainer.epochs=1", "trainer.batch_size=512"});
  // The same global batch: 2 workers x 256.
  s2.insert(s2.end(), {"trainer.epochs=1", "trainer.batch_size=256", "dist.num_ps=2", "trainer.num_threads=1"});
  ProcessRun a = Exec(WithSets({kBinary, "train", kConfig, "--output-dir", single}, s1), std::chrono::seconds(180));
  ASSERT_EQ(a.code, 0) << a.output;
  ProcessRun b = Exec(WithSets({mpirun, "--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader", "-np", "4", kBinary,
                                "train", kConfig, "--output-dir", mpi},
                               s2),
                      std::chrono::seconds(300));
  ASSERT_EQ(b.code, 0) << b.output;
  const double auc1 = ValidationAuc(single), auc2 = ValidationAuc(mpi);
  EXPECT_GT(auc1, 0.70) << a.output;  // trained (the generated data's oracle is ~0.83, chance 0.5)
  EXPECT_NEAR(auc2, auc1, 0.005) << b.output;
}

TEST_F(LaunchTest, ResumeAfterAKilledWorkerFinishesLikeAnUninterruptedRun) {
  auto sets = [&](const std::string& out) {
    std::vector<std::string> s = Sets(out, 40000, false);
    s.insert(s.end(), {"trainer.epochs=2", "trainer.batch_size=256", "trainer.checkpoint_every_steps=25",
                       "trainer.log_every=10"});
    return s;
  };
  const std::string whole = dir_ + "/whole", cut = dir_ + "/cut";
  ProcessRun a = Exec(WithSets({kBinary, "launch", "--ps", "1", "--workers", "2", kConfig, "--output-dir", whole}, sets(whole)),
                      std::chrono::seconds(240));
  ASSERT_EQ(a.code, 0) << a.output;

  pid_t victim = -1;
  bool killed = false;
  ProcessRun b = Exec(WithSets({kBinary, "launch", "--ps", "1", "--workers", "2", kConfig, "--output-dir", cut}, sets(cut)),
                      std::chrono::seconds(240), [&](const std::string& line, pid_t) {
                        static const std::regex pid_line("worker 1: pid ([0-9]+)");
                        std::smatch m;
                        if (victim < 0 && std::regex_search(line, m, pid_line)) victim = std::stoi(m[1]);
                        // Killed in the second epoch, after its first checkpoint there.
                        if (!killed && victim > 0 && line.find("(epoch 2, step ") != std::string::npos &&
                            line.find("(epoch 2, step 0)") == std::string::npos) {
                          kill(victim, SIGKILL);
                          killed = true;
                        }
                      });
  ASSERT_TRUE(killed) << b.output;
  ASSERT_NE(b.code, 0) << b.output;
  EXPECT_FALSE(fs::exists(cut + "/metrics.json")) << "the killed run must not have finished";

  ProcessRun c = Exec(WithSets({kBinary, "launch", "--ps", "1", "--workers", "2", kConfig, "--output-dir", cut, "--resume",
                                cut + "/checkpoints"},
                               sets(cut)),
                      std::chrono::seconds(240));
  ASSERT_EQ(c.code, 0) << c.output;
  EXPECT_NE(c.output.find("resuming from"), std::string::npos) << c.output;
  const double auc_whole = ValidationAuc(whole), auc_resumed = ValidationAuc(cut);
  EXPECT_GT(auc_whole, 0.70) << a.output;
  EXPECT_NEAR(auc_resumed, auc_whole, 0.005) << c.output;
}

}  // namespace

namespace {

// Starts `shardrec train` once per entry of local_ids as srun would (SLURM_PROCID = index,
// SLURM_LOCALID = the entry), waits for all; returns every rank's log, and whether all exited 0.
std::pair<bool, std::string> RunSrunStyle(const std::vector<int>& local_ids, const std::vector<std::string>& argv,
                                          const std::string& dir) {
  std::vector<pid_t> pids;
  std::vector<std::string> logs;
  const int n = static_cast<int>(local_ids.size());
  for (int r = 0; r < n; ++r) {
    logs.push_back(dir + "/rank" + std::to_string(r) + ".log");
    const pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      setenv("SLURM_PROCID", std::to_string(r).c_str(), 1);
      setenv("SLURM_NTASKS", std::to_string(n).c_str(), 1);
      setenv("SLURM_LOCALID", std::to_string(local_ids[r]).c_str(), 1);
      setenv("SLURM_JOB_ID", "4242", 1);
      setenv("SLURM_STEP_ID", "0", 1);
      if (!freopen(logs.back().c_str(), "w", stdout)) _exit(126);
      dup2(1, 2);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    pids.push_back(pid);
  }
  std::string report;
  bool ok = true;
  const auto deadline = Clock::now() + std::chrono::seconds(180);
  for (size_t i = 0; i < pids.size(); ++i) {
    int status = 0;
    while (waitpid(pids[i], &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        for (pid_t p : pids) kill(-p, SIGKILL);
        waitpid(pids[i], &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::ifstream in(logs[i]);
    std::stringstream ss;
    ss << in.rdbuf();
    report += "rank " + std::to_string(i) + ":\n" + ss.str();
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  return {ok, report};
}

// What srun (or torchrun) starts: N copies of `shardrec train` that know only their rank from
// the environment. Rank 0 serves the PS shard, ranks 1-2 train; addresses go through the file
// store in the rendezvous folder (no MPI here).
TEST_F(LaunchTest, SrunStyleRanksFindTheirPsWithoutALauncher) {
  const std::string out = dir_ + "/srun";
  std::vector<std::string> s = Sets(out, 20000, false);
  s.insert(s.end(), {"trainer.epochs=1", "trainer.batch_size=256", "dist.num_ps=1", "trainer.num_threads=1",
                     "dist.rendezvous_dir=" + dir_ + "/rendezvous"});
  auto [ok, report] = RunSrunStyle({0, 1, 2}, WithSets({kBinary, "train", kConfig, "--output-dir", out}, s), dir_);
  ASSERT_TRUE(ok) << report;
  EXPECT_NE(report.find("over 2 workers"), std::string::npos) << report;
  EXPECT_GT(ValidationAuc(out), 0.65) << report;
}

// dist.ps_per_node: two "machines" of two ranks each (SLURM_LOCALID 0, 1, 0, 1): ranks 0 and 2
// serve shards 0 and 1, ranks 1 and 3 are workers 0 and 1.
TEST_F(LaunchTest, PsPerNodePutsAShardOnEveryMachine) {
  const std::string out = dir_ + "/pernode";
  std::vector<std::string> s = Sets(out, 20000, false);
  s.insert(s.end(), {"trainer.epochs=1", "trainer.batch_size=256", "dist.ps_per_node=true", "trainer.num_threads=1",
                     "dist.rendezvous_dir=" + dir_ + "/rendezvous"});
  auto [ok, report] = RunSrunStyle({0, 1, 0, 1}, WithSets({kBinary, "train", kConfig, "--output-dir", out}, s), dir_);
  ASSERT_TRUE(ok) << report;
  const size_t r1 = report.find("rank 1:"), r2 = report.find("rank 2:"), r3 = report.find("rank 3:");
  EXPECT_NE(report.substr(0, r1).find("shard 0 of 2"), std::string::npos) << report;
  EXPECT_NE(report.substr(r2, r3 - r2).find("shard 1 of 2"), std::string::npos) << report;
  EXPECT_NE(report.substr(r1, r2 - r1).find("over 2 workers"), std::string::npos) << "worker 0 reports\n" << report;
  EXPECT_TRUE(fs::exists(out + "/ps/shard-1"));
}

}  // namespace
