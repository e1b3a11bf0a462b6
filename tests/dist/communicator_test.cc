// Communicator backends: Gloo with 2 and 3 processes on this machine (each rank is this binary
// re-run as the hidden CommWorker test case), MPI through mpirun, and the error paths (a peer that
// never arrives, bad options, a reused store prefix) in process.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "common/error.h"
#include "dist/accelerator.h"
#include "dist/communicator.h"
#include "dist/comm_test_util.h"

namespace shardrec::dist {
namespace {

using testing::ExitReport;
using testing::SelfExe;
using testing::Spawn;
using testing::TempDir;
using testing::WaitAll;

std::string Env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// The arithmetic every rank checks; values are exact in float, so sums are exact in any order.
float FloatValue(int rank, size_t i) { return 0.5f * static_cast<float>(rank + 1) + static_cast<float>(i % 13); }
float FloatSum(int size, size_t i) { return 0.25f * static_cast<float>(size * (size + 1)) + static_cast<float>(size * (i % 13)); }

void CheckAllreduce(Communicator& c, size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = FloatValue(c.rank(), i);
  c.AllreduceSum(v.data(), n);
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i)
    if (v[i] != FloatSum(c.size(), i) && bad++ < 3) ADD_FAILURE() << "n=" << n << " i=" << i << ": " << v[i] << " != " << FloatSum(c.size(), i);
  EXPECT_EQ(bad, 0u) << "AllreduceSum float n=" << n << " rank " << c.rank();
}

void RunAllCollectives(Communicator& c, const std::string& scratch_dir, const std::string& tag) {
  const int r = c.rank(), s = c.size();
  for (size_t n : {size_t{1}, size_t{1000}, size_t{1} << 20}) CheckAllreduce(c, n);

  std::vector<int64_t> iv(1000);
  for (size_t i = 0; i < iv.size(); ++i) iv[i] = (int64_t{r + 1} << 40) + static_cast<int64_t>(i);
  c.AllreduceSum(iv.data(), iv.size());
  for (size_t i = 0; i < iv.size(); ++i) ASSERT_EQ(iv[i], (int64_t{s * (s + 1) / 2} << 40) + s * static_cast<int64_t>(i));

  std::vector<double> dv(777);
  for (size_t i = 0; i < dv.size(); ++i) dv[i] = 1e-3 * (r + 1) + static_cast<double>(i);
  c.AllreduceSum(dv.data(), dv.size());
  for (size_t i = 0; i < dv.size(); ++i) ASSERT_NEAR(dv[i], 1e-3 * s * (s + 1) / 2 + s * static_cast<double>(i), 1e-9);

  const int root = s - 1;  // non-zero whenever s > 1
  std::vector<float> b(100000, -1.0f);
  if (r == root)
    for (size_t i = 0; i < b.size(); ++i) b[i] = 7.0f + 0.25f * static_cast<float>(i % 1000);
  c.Broadcast(b.data(), b.size(), root);
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], 7.0f + 0.25f * static_cast<float>(i % 1000)) << "Broadcast i=" << i;

  const size_t n = 5;
  std::vector<float> in(n), out(n * s, -1.0f);
  for (size_t j = 0; j < n; ++j) in[j] = static_cast<float>(r * 100 + static_cast<int>(j));
  c.Allgather(in.data(), n, out.data());
  for (int q = 0; q < s; ++q)
    for (size_t j = 0; j < n; ++j) ASSERT_EQ(out[q * n + j], static_cast<float>(q * 100 + static_cast<int>(j)));

  char mine[16] = {};
  std::snprintf(mine, sizeof(mine), "rank-%d", r);
  std::vector<char> all(sizeof(mine) * s);
  c.AllgatherBytes(mine, sizeof(mine), all.data());
  for (int q = 0; q < s; ++q) EXPECT_EQ(std::string(all.data() + q * sizeof(mine)), "rank-" + std::to_string(q));

  // Barrier: every rank leaves a file before it; after it, all files exist. Rank 0 is late.
  if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto mark = [&](int q) { return scratch_dir + "/barrier-" + tag + "-" + std::to_string(q); };
  std::ofstream(mark(r)).put('x');
  c.Barrier();
  for (int q = 0; q < s; ++q) {
    struct stat st;
    EXPECT_EQ(::stat(mark(q).c_str(), &st), 0) << "rank " << r << " passed the barrier before rank " << q << " reached it";
  }
  c.Barrier();  // nobody exits (and tears down its connections) before everyone checked
}

// One rank, run as a child process by the tests below (never by ctest itself: DISABLED_).
TEST(CommWorker, DISABLED_Run) {
  CommunicatorOptions o;
  o.backend = ParseBackend(Env("SHARDREC_TEST_COMM_BACKEND", "gloo"));
  o.rank = std::atoi(Env("SHARDREC_TEST_COMM_RANK", "-1").c_str());
  o.size = std::atoi(Env("SHARDREC_TEST_COMM_SIZE", "-1").c_str());
  o.store_dir = Env("SHARDREC_TEST_COMM_DIR");
  o.store_prefix = Env("SHARDREC_TEST_COMM_PREFIX", "test");
  o.timeout = std::chrono::seconds(10);
  std::unique_ptr<Communicator> c = MakeCommunicator(o);
  if (o.rank >= 0) ASSERT_EQ(c->rank(), o.rank);
  if (o.size >= 0) ASSERT_EQ(c->size(), o.size);
  ASSERT_EQ(c->backend(), o.backend);
  if (!Env("SHARDREC_TEST_COMM_DIE_AFTER_CONNECT").empty()) _exit(3);  // simulates a crashed peer
  RunAllCollectives(*c, Env("SHARDREC_TEST_COMM_DIR", "/tmp"), o.store_prefix);
}

std::vector<std::string> WorkerArgs(const std::string& exe) {
  return {exe, "--gtest_also_run_disabled_tests", "--gtest_filter=CommWorker.DISABLED_Run"};
}

void RunGloo(int size) {
  TempDir dir;
  std::vector<pid_t> pids;
  for (int r = 0; r < size; ++r)
    pids.push_back(Spawn(WorkerArgs(SelfExe()), {"SHARDREC_TEST_COMM_BACKEND=gloo", "SHARDREC_TEST_COMM_RANK=" + std::to_string(r),
                                                 "SHARDREC_TEST_COMM_SIZE=" + std::to_string(size), "SHARDREC_TEST_COMM_DIR=" + dir.path(),
                                                 "SHARDREC_TEST_COMM_PREFIX=gloo" + std::to_string(size)}));
  ExitReport rep = WaitAll(pids, std::chrono::seconds(25));
  EXPECT_TRUE(rep.all_ok) << rep.text;
}

TEST(GlooCommunicator, TwoProcesses) { RunGloo(2); }
TEST(GlooCommunicator, ThreeProcesses) { RunGloo(3); }

TEST(GlooCommunicator, SingleProcessIsIdentity) {
  TempDir dir;
  CommunicatorOptions o;
  o.rank = 0;
  o.size = 1;
  o.store_dir = dir.path();
  auto c = MakeCommunicator(o);
  float x[3] = {1, 2, 3};
  c->AllreduceSum(x, 3);
  c->Broadcast(x, 3, 0);
  c->Barrier();
  float out[3];
  c->Allgather(x, 3, out);
  EXPECT_EQ(out[2], 3.0f);
  EXPECT_EQ(x[0], 1.0f);
}

TEST(GlooCommunicator, PeerThatNeverArrivesTimesOut) {
  TempDir dir;
  CommunicatorOptions o;
  o.rank = 0;
  o.size = 2;  // rank 1 never starts
  o.store_dir = dir.path();
  o.timeout = std::chrono::milliseconds(1000);
  auto t0 = std::chrono::steady_clock::now();
  try {
    MakeCommunicator(o);
    FAIL() << "expected a timeout";
  } catch (const CommunicatorError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("gloo backend, rank 0 of 2: connect"), std::string::npos) << m;
    EXPECT_NE(m.find("imeout"), std::string::npos) << m;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST(GlooCommunicator, PeerThatDiesIsAnErrorNotAHang) {
  TempDir dir;
  pid_t peer = Spawn(WorkerArgs(SelfExe()), {"SHARDREC_TEST_COMM_BACKEND=gloo", "SHARDREC_TEST_COMM_RANK=1", "SHARDREC_TEST_COMM_SIZE=2",
                                             "SHARDREC_TEST_COMM_DIR=" + dir.path(), "SHARDREC_TEST_COMM_PREFIX=dies",
                                             "SHARDREC_TEST_COMM_DIE_AFTER_CONNECT=1"});
  CommunicatorOptions o;
  o.rank = 0;
  o.size = 2;
  o.store_dir = dir.path();
  o.store_prefix = "dies";
  o.timeout = std::chrono::seconds(5);
  auto t0 = std::chrono::steady_clock::now();
  try {
    auto c = MakeCommunicator(o);
    std::vector<float> v(1 << 16, 1.0f);
    for (int i = 0; i < 100; ++i) c->AllreduceSum(v.data(), v.size());
    ADD_FAILURE() << "expected an error: the peer exits right after connecting";
  } catch (const CommunicatorError& e) {
    EXPECT_NE(std::string(e.what()).find("gloo backend, rank 0 of 2: "), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(12));
  ExitReport rep = WaitAll({peer}, std::chrono::seconds(10));
  EXPECT_NE(rep.text.find("exit 3"), std::string::npos) << rep.text;
}

TEST(GlooCommunicator, ReusedStorePrefixIsAnError) {
  TempDir dir;
  CommunicatorOptions o;
  o.rank = 0;
  o.size = 1;
  o.store_dir = dir.path();
  o.store_prefix = "run-1";
  { auto c = MakeCommunicator(o); }
  try {
    MakeCommunicator(o);
    FAIL() << "expected an error for the reused prefix";
  } catch (const CommunicatorError& e) {
    EXPECT_NE(std::string(e.what()).find("gloo backend, rank 0 of 1"), std::string::npos) << e.what();
  }
  o.store_prefix = "run-2";
  EXPECT_NO_THROW(MakeCommunicator(o));
}

TEST(Communicator, BadOptionsAreErrors) {
  CommunicatorOptions o;
  o.rank = 2;
  o.size = 2;
  EXPECT_THROW(MakeCommunicator(o), UserError);
  o.rank = 0;
  o.store_dir = "";
  EXPECT_THROW(MakeCommunicator(o), CommunicatorError);
  o.store_dir = "/nonexistent/shardrec";
  try {
    MakeCommunicator(o);
    FAIL();
  } catch (const CommunicatorError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/shardrec"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ParseBackend("smoke-signals"), UserError);
  EXPECT_EQ(ParseBackend("mpi"), Backend::kMpi);
  EXPECT_STREQ(BackendName(Backend::kNccl), "nccl");
}

TEST(Communicator, NcclWithoutBuildSupportSaysSo) {
  if (ProbeAccelerators().nccl_compiled) GTEST_SKIP() << "NCCL is compiled in: see nccl_communicator_test";
  CommunicatorOptions o;
  o.backend = Backend::kNccl;
  o.rank = 0;
  o.size = 1;
  try {
    MakeCommunicator(o);
    FAIL();
  } catch (const CommunicatorError& e) {
    EXPECT_NE(std::string(e.what()).find("not compiled in"), std::string::npos) << e.what();
  }
}

TEST(MpiCommunicator, TwoProcessesUnderMpirun) {
  const std::string mpirun = "/usr/bin/mpirun";
  if (::access(mpirun.c_str(), X_OK) != 0) GTEST_SKIP() << mpirun << " not found: install openmpi-bin to run the MPI test";
  TempDir dir;
  std::vector<std::string> args = {mpirun, "--allow-run-as-root", "--oversubscribe", "-np", "2",
                                   "-x", "SHARDREC_TEST_COMM_BACKEND=mpi", "-x", "SHARDREC_TEST_COMM_DIR=" + dir.path(),
                                   "-x", "SHARDREC_TEST_COMM_PREFIX=mpi"};
  for (const std::string& a : WorkerArgs(SelfExe())) args.push_back(a);
  // mpirun's exit code is non-zero when any rank's is; the ranks' gtest output goes to our stdout.
  ExitReport rep = WaitAll({Spawn(args, {"OMPI_MCA_btl=self,vader", "OMPI_MCA_rmaps_base_oversubscribe=1"})}, std::chrono::seconds(25));
  EXPECT_TRUE(rep.all_ok) << rep.text;
}

}  // namespace
}  // namespace shardrec::dist
