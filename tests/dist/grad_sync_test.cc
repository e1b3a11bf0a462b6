// GradSync: gradient averaging over 2 and 3 Gloo ranks on this machine (each rank is this binary
// re-run as the hidden GradSyncWorker case, see comm_test_util.h), with overlap on and off, one
// bucket and one bucket per parameter; data-parallel Adam equals single-process Adam on the
// concatenated batch; parameters without gradients; world size 1 and bad arguments in process.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "common/error.h"
#include "dist/comm_test_util.h"
#include "dist/communicator.h"
#include "dist/grad_sync.h"

namespace shardrec::dist {
namespace {

using testing::ExitReport;
using testing::SelfExe;
using testing::Spawn;
using testing::TempDir;
using testing::WaitAll;

constexpr int64_t kIn = 8;

std::string Env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

std::unique_ptr<Communicator> ConnectFromEnv() {
  CommunicatorOptions o;
  o.backend = Backend::kGloo;
  o.rank = std::atoi(Env("SHARDREC_TEST_GS_RANK", "-1").c_str());
  o.size = std::atoi(Env("SHARDREC_TEST_GS_SIZE", "-1").c_str());
  o.store_dir = Env("SHARDREC_TEST_GS_DIR");
  o.store_prefix = Env("SHARDREC_TEST_GS_PREFIX", "gs");
  o.timeout = std::chrono::seconds(10);
  return MakeCommunicator(o);
}

// Rank q's batch at step s, the same wherever it is computed.
std::pair<torch::Tensor, torch::Tensor> Batch(int q, int step, int64_t rows, int64_t in = kIn) {
  torch::manual_seed(1000 + 31 * step + q);
  torch::Tensor x = torch::randn({rows, in});
  torch::Tensor y = torch::randn({rows, 1});
  return {x, y};
}

torch::nn::Sequential MakeBnModel() {
  return torch::nn::Sequential(torch::nn::Linear(kIn, 16), torch::nn::BatchNorm1d(16), torch::nn::ReLU(), torch::nn::Linear(16, 1));
}
torch::nn::Sequential MakeMlp() { return torch::nn::Sequential(torch::nn::Linear(kIn, 16), torch::nn::Tanh(), torch::nn::Linear(16, 1)); }

torch::nn::Sequential Clone(const torch::nn::Sequential& m) {
  return torch::nn::Sequential(std::dynamic_pointer_cast<torch::nn::SequentialImpl>(m->clone()));
}

torch::Tensor Loss(torch::nn::Sequential& m, const torch::Tensor& x, const torch::Tensor& y) { return torch::mse_loss(m->forward(x), y); }

double MaxDiff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

// (1) Averaged gradients, BroadcastParameters / BroadcastTensors.
void ScenarioAverage(Communicator& comm) {
  const int r = comm.rank(), n = comm.size();
  torch::manual_seed(100 + r);
  torch::nn::Sequential model = MakeBnModel();
  torch::manual_seed(100);
  torch::nn::Sequential rank0 = MakeBnModel();  // what rank 0 built
  {
    torch::NoGradGuard g;
    for (auto& b : model->named_buffers()) {  // distinguishable buffers: rank 0's must win
      if (b.key().find("running_mean") != std::string::npos) b.value().fill_(0.25f * (r + 1));
      if (b.key().find("num_batches_tracked") != std::string::npos) b.value().fill_(int64_t{7} + r);
    }
  }
  auto params = model->parameters();
  if (r != 0) ASSERT_GT(MaxDiff(params[0], rank0->parameters()[0]), 0.0) << "seeds should differ before the broadcast";
  {
    GradSync gs(params, &comm);
    gs.BroadcastParameters(0);
    gs.BroadcastTensors(model->buffers(), 0);
  }
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i], rank0->parameters()[i])) << "param " << i;
  for (auto& b : model->named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos) EXPECT_TRUE(torch::allclose(b.value(), torch::full_like(b.value(), 0.25f)));
    if (b.key().find("num_batches_tracked") != std::string::npos) EXPECT_EQ(b.value().item<int64_t>(), 7);
  }

  struct Config {
    bool overlap;
    size_t bucket_bytes;
  };
  for (const Config& cfg : {Config{true, 1 << 20}, Config{true, 64}, Config{false, 1 << 20}, Config{false, 64}}) {
    SCOPED_TRACE("overlap=" + std::to_string(cfg.overlap) + " bucket_bytes=" + std::to_string(cfg.bucket_bytes));
    GradSyncOptions o;
    o.overlap = cfg.overlap;
    o.bucket_bytes = cfg.bucket_bytes;
    GradSync gs(params, &comm, o);
    // 64 bytes: every parameter has >= 16 floats except the output bias (1 float), and 4 + 64 > 64,
    // so each parameter gets a bucket of its own.
    if (cfg.bucket_bytes == 64) EXPECT_EQ(gs.stats().buckets, static_cast<int>(params.size()));
    else EXPECT_EQ(gs.stats().buckets, 1);
    for (int step = 0; step < 2; ++step) {
      model->zero_grad();
      auto [x, y] = Batch(r, step, 6 + step);
      Loss(model, x, y).backward();
      gs.Synchronize();

      std::vector<torch::Tensor> ref;
      for (auto& p : params) ref.push_back(torch::zeros_like(p));
      for (int q = 0; q < n; ++q) {
        torch::nn::Sequential m = Clone(model);
        m->zero_grad();
        auto [xq, yq] = Batch(q, step, 6 + step);
        Loss(m, xq, yq).backward();
        auto mp = m->parameters();
        for (size_t i = 0; i < ref.size(); ++i) ref[i] += mp[i].grad();
      }
      for (size_t i = 0; i < ref.size(); ++i) {
        ref[i] /= n;
        ASSERT_TRUE(params[i].grad().defined()) << "param " << i;
        const double tol = 1e-6 * std::max(1.0, ref[i].abs().max().item<double>());
        EXPECT_LE(MaxDiff(params[i].grad(), ref[i]), tol) << "step " << step << " param " << i;
      }
    }
    EXPECT_EQ(gs.stats().steps, 2);
    // With overlap, every parameter gets a gradient here, so every bucket goes out from a hook
    // during backward; without it, none does.
    if (cfg.overlap) EXPECT_EQ(gs.stats().early_launches, 2 * gs.stats().buckets);
    if (!cfg.overlap) EXPECT_EQ(gs.stats().early_launches, 0);
  }
}

// (2) N Adam steps on n ranks with batch B each == one process with batch n*B (mean loss).
// No BatchNorm: its batch statistics are per rank, so a BN model is not equivalent to one big batch.
void ScenarioAdam(Communicator& comm) {
  const int r = comm.rank(), n = comm.size();
  constexpr int64_t kB = 5;
  constexpr int kSteps = 6;
  for (bool overlap : {true, false}) {
    SCOPED_TRACE("overlap=" + std::to_string(overlap));
    torch::manual_seed(200 + r);
    torch::nn::Sequential model = MakeMlp();
    torch::manual_seed(200);
    torch::nn::Sequential single = MakeMlp();
    GradSyncOptions o;
    o.overlap = overlap;
    o.bucket_bytes = 256;  // several buckets
    GradSync gs(model->parameters(), &comm, o);
    gs.BroadcastParameters(0);
    torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-2));
    torch::optim::Adam single_opt(single->parameters(), torch::optim::AdamOptions(1e-2));
    for (int step = 0; step < kSteps; ++step) {
      opt.zero_grad();
      auto [x, y] = Batch(r, step, kB);
      Loss(model, x, y).backward();
      gs.Synchronize();
      opt.step();

      std::vector<torch::Tensor> xs, ys;
      for (int q = 0; q < n; ++q) {
        auto [xq, yq] = Batch(q, step, kB);
        xs.push_back(xq);
        ys.push_back(yq);
      }
      single_opt.zero_grad();
      Loss(single, torch::cat(xs), torch::cat(ys)).backward();
      single_opt.step();
    }
    auto a = model->parameters(), b = single->parameters();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_LE(MaxDiff(a[i], b[i]), 1e-5) << "param " << i;
  }
}

// (3) Parameters without gradients: on some ranks only, on none; and a second backward.
void ScenarioNoGrad(Communicator& comm) {
  const int r = comm.rank(), n = comm.size();
  const float nf = static_cast<float>(n);
  for (bool overlap : {true, false}) {
    SCOPED_TRACE("overlap=" + std::to_string(overlap));
    torch::Tensor a = torch::ones({4}).requires_grad_(), b = torch::ones({3}).requires_grad_(),
                  c = torch::ones({5}).requires_grad_(), d = torch::ones({2}).requires_grad_();
    std::vector<torch::Tensor> params{a, b, c, d};
    GradSyncOptions o;
    o.overlap = overlap;
    o.bucket_bytes = 16;  // a, b, c, d in buckets of their own: buckets that never fill
    GradSync gs(params, &comm, o);
    EXPECT_EQ(gs.stats().buckets, 4);
    auto clear = [&] {
      for (auto& p : params) p.mutable_grad().reset();
    };

    // a on every rank, b on rank 0 only, c on rank 1 only, d nowhere.
    clear();
    torch::Tensor loss = (a * static_cast<float>(r + 1)).sum();
    if (r == 0) loss = loss + (b * 2.0f).sum();
    if (r == 1) loss = loss + (c * 3.0f).sum();
    loss.backward();
    gs.Synchronize();
    ASSERT_TRUE(a.grad().defined() && b.grad().defined() && c.grad().defined());
    EXPECT_TRUE(torch::allclose(a.grad(), torch::full({4}, (nf + 1) / 2)));
    EXPECT_TRUE(torch::allclose(b.grad(), torch::full({3}, 2.0f / nf)));
    EXPECT_TRUE(torch::allclose(c.grad(), torch::full({5}, 3.0f / nf)));
    EXPECT_FALSE(d.grad().defined()) << "no rank had a gradient for d";

    // Only d: the first three buckets never fill anywhere.
    clear();
    (d * static_cast<float>(r + 1)).sum().backward();
    gs.Synchronize();
    EXPECT_FALSE(a.grad().defined() || b.grad().defined() || c.grad().defined());
    ASSERT_TRUE(d.grad().defined());
    EXPECT_TRUE(torch::allclose(d.grad(), torch::full({2}, (nf + 1) / 2)));

    // No backward at all.
    clear();
    gs.Synchronize();
    for (auto& p : params) EXPECT_FALSE(p.grad().defined());

    // Two backward() calls before one Synchronize(): an error with overlap, accumulation without.
    clear();
    (a * 1.0f).sum().backward();
    (a * 1.0f).sum().backward();
    if (overlap) {
      EXPECT_THROW(gs.Synchronize(), UserError);
    } else {
      gs.Synchronize();
      EXPECT_TRUE(torch::allclose(a.grad(), torch::full({4}, 2.0f)));
    }
    // And the next step is fine again.
    clear();
    (b * static_cast<float>(r)).sum().backward();
    gs.Synchronize();
    EXPECT_TRUE(torch::allclose(b.grad(), torch::full({3}, (nf - 1) / 2)));
  }
}

// Ad hoc measurement (not a test): Synchronize overhead for a DeepFM-sized dense part.
void ScenarioBench(Communicator& comm) {
  const int r = comm.rank();
  const int64_t rows = std::atoi(Env("SHARDREC_TEST_GS_ROWS", "1024").c_str());
  const int steps = 100, warmup = 10;
  auto make = [] {
    return torch::nn::Sequential(torch::nn::Linear(429, 256), torch::nn::BatchNorm1d(256), torch::nn::ReLU(), torch::nn::Linear(256, 128),
                                 torch::nn::BatchNorm1d(128), torch::nn::ReLU(), torch::nn::Linear(128, 1));
  };
  torch::manual_seed(1);
  torch::nn::Sequential model = make();
  int64_t numel = 0;
  for (auto& p : model->parameters()) numel += p.numel();
  auto [x, y] = Batch(r, 0, rows, 429);
  struct Mode {
    const char* name;
    bool sync, overlap;
    size_t bucket;
  };
  for (const Mode& m : {Mode{"no sync", false, false, 0}, Mode{"overlap=off 25MB", true, false, 25u << 20},
                        Mode{"overlap=on 25MB", true, true, 25u << 20}, Mode{"overlap=off 128KB", true, false, 128u << 10},
                        Mode{"overlap=on 128KB", true, true, 128u << 10}}) {
    GradSyncOptions o;
    o.overlap = m.overlap;
    o.bucket_bytes = m.bucket;
    std::unique_ptr<GradSync> gs;
    if (m.sync) gs = std::make_unique<GradSync>(model->parameters(), &comm, o);
    std::vector<double> total, sync;  // per step; medians below (the machine is shared)
    for (int s = 0; s < warmup + steps; ++s) {
      comm.Barrier();  // between steps: no GradSync work in flight
      auto t0 = std::chrono::steady_clock::now();
      model->zero_grad();
      Loss(model, x, y).backward();
      auto t1 = std::chrono::steady_clock::now();
      if (gs) gs->Synchronize();
      auto t2 = std::chrono::steady_clock::now();
      if (s >= warmup) {
        total.push_back(std::chrono::duration<double>(t2 - t0).count());
        sync.push_back(std::chrono::duration<double>(t2 - t1).count());
      }
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    if (r == 0)
      std::printf("[bench] %-18s params=%lld rows=%lld buckets=%d  median fwd+bwd+sync %.3f ms  median Synchronize %.3f ms  mean allreduce %.3f ms/step\n",
                  m.name, static_cast<long long>(numel), static_cast<long long>(rows), gs ? gs->stats().buckets : 0, 1e3 * median(total),
                  1e3 * median(sync), gs ? 1e3 * gs->stats().allreduce_seconds / (warmup + steps) : 0.0);
  }
  std::fflush(stdout);
}

// One rank, run as a child process by the tests below (never by ctest itself: DISABLED_).
TEST(GradSyncWorker, DISABLED_Run) {
  torch::set_num_threads(std::atoi(Env("SHARDREC_TEST_GS_THREADS", "1").c_str()));
  std::unique_ptr<Communicator> comm = ConnectFromEnv();
  const std::string scenario = Env("SHARDREC_TEST_GS_SCENARIO");
  if (scenario == "average") ScenarioAverage(*comm);
  else if (scenario == "adam") ScenarioAdam(*comm);
  else if (scenario == "nograd") ScenarioNoGrad(*comm);
  else if (scenario == "bench") ScenarioBench(*comm);
  else FAIL() << "unknown scenario '" << scenario << "'";
  comm->Barrier();  // nobody tears down its connections before everyone finished
}

void RunRanks(const std::string& scenario, int size, std::chrono::seconds timeout = std::chrono::seconds(25),
              std::vector<std::string> extra = {}) {
  TempDir dir;
  std::vector<pid_t> pids;
  for (int r = 0; r < size; ++r) {
    std::vector<std::string> env{"SHARDREC_TEST_GS_SCENARIO=" + scenario, "SHARDREC_TEST_GS_RANK=" + std::to_string(r),
                                 "SHARDREC_TEST_GS_SIZE=" + std::to_string(size), "SHARDREC_TEST_GS_DIR=" + dir.path(),
                                 "SHARDREC_TEST_GS_PREFIX=" + scenario + std::to_string(size)};
    env.insert(env.end(), extra.begin(), extra.end());
    pids.push_back(Spawn({SelfExe(), "--gtest_also_run_disabled_tests", "--gtest_filter=GradSyncWorker.DISABLED_Run"}, env));
  }
  ExitReport rep = WaitAll(pids, timeout);
  EXPECT_TRUE(rep.all_ok) << scenario << " with " << size << " ranks:\n" << rep.text;
}

TEST(GradSync, AveragesGradientsTwoRanks) { RunRanks("average", 2); }
TEST(GradSync, AveragesGradientsThreeRanks) { RunRanks("average", 3); }
TEST(GradSync, AdamTwoRanksEqualsOneProcessDoubleBatch) { RunRanks("adam", 2); }
TEST(GradSync, ParamsWithoutGradientsTwoRanks) { RunRanks("nograd", 2); }
TEST(GradSync, ParamsWithoutGradientsThreeRanks) { RunRanks("nograd", 3); }

// Ad hoc: ./grad_sync_test --gtest_also_run_disabled_tests --gtest_filter=GradSyncBench.*
TEST(GradSyncBench, DISABLED_DeepFMDense) { RunRanks("bench", 2, std::chrono::seconds(300)); }

std::unique_ptr<Communicator> SoloCommunicator(const TempDir& dir) {
  CommunicatorOptions o;
  o.rank = 0;
  o.size = 1;
  o.store_dir = dir.path();
  o.store_prefix = "solo";
  o.timeout = std::chrono::seconds(5);
  return MakeCommunicator(o);
}

TEST(GradSync, WorldSizeOneIsANoOp) {
  TempDir dir;
  auto comm = SoloCommunicator(dir);
  torch::manual_seed(3);
  torch::nn::Sequential model = MakeBnModel();
  auto before = Clone(model)->parameters();
  GradSync gs(model->parameters(), comm.get(), GradSyncOptions{64, true});
  gs.BroadcastParameters(0);
  gs.BroadcastTensors(model->buffers(), 0);
  auto params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i], before[i]));
  auto [x, y] = Batch(0, 0, 6);
  Loss(model, x, y).backward();
  std::vector<torch::Tensor> grads;
  for (auto& p : params) grads.push_back(p.grad().clone());
  gs.Synchronize();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i].grad(), grads[i]));
  EXPECT_EQ(gs.world_size(), 1);
}

TEST(GradSync, RejectsBadParameters) {
  TempDir dir;
  auto comm = SoloCommunicator(dir);
  torch::Tensor ok = torch::ones({2}).requires_grad_();
  EXPECT_THROW(GradSync({torch::ones({2}, torch::kDouble).requires_grad_()}, comm.get()), UserError);
  EXPECT_THROW(GradSync({torch::ones({2})}, comm.get()), UserError);  // no requires_grad
  EXPECT_THROW(GradSync({ok, ok}, comm.get()), UserError);
  EXPECT_THROW(GradSync({ok}, nullptr), UserError);
  GradSync gs({ok}, comm.get());
  EXPECT_NO_THROW(gs.BroadcastTensors({torch::ones({2}, torch::kInt)}, 0));  // world size 1: no-op
}

}  // namespace
}  // namespace shardrec::dist
