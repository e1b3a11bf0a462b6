// The PS row optimizers against LibTorch 1.13's dense optimizers: a torch::nn::Embedding trained
// with torch::optim::{SGD, Adagrad, Adam} on loss = sum(embedding(ids) * upstream) must end with
// the same rows as the PS fed the per-id summed gradients of the same batches; row-wise Adagrad
// against the same update written with plain tensor ops. Each runs twice: on a memory-only PS and
// on a RocksDB-backed PS whose cache holds a few rows per shard (every row goes through eviction,
// write-back and MultiGet, and the push log through automatic flushes).
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

#include "ps/ps_client.h"
#include "ps/row_cache.h"
#include "ps/row_optimizer.h"
#include "ps_test_util.h"

namespace shardrec::ps {
namespace {

constexpr int kVocab = 50;
constexpr int kDim = 8;
constexpr int kSteps = 20;
constexpr int kBatch = 64;
constexpr int kTouched = 30;  // size of the fixed id set (the first kTouched vocabulary entries)

struct Case {
  OptimizerSpec opt;
  // Every batch holds exactly the ids of a fixed set (with duplicates, in varying order).
  // Needed whenever torch's dense optimizer moves rows that got no gradient this step, which the
  // lazy PS does not: Adam (a row with nonzero moments keeps moving, and torch keeps one step count
  // for the whole tensor, so bias correction would differ for rows first touched later), and any
  // weight_decay > 0 (torch adds weight_decay * w to the zero gradient of untouched rows).
  bool fixed_id_set;
  int num_shards;
};

std::unique_ptr<torch::optim::Optimizer> MakeTorchOptimizer(const OptimizerSpec& o,
                                                            std::vector<torch::Tensor> params) {
  switch (o.kind) {
    case OptimizerSpec::Kind::kSgd:
      return std::make_unique<torch::optim::SGD>(
          params, torch::optim::SGDOptions(o.lr).weight_decay(o.weight_decay));
    case OptimizerSpec::Kind::kAdagrad:
      return std::make_unique<torch::optim::Adagrad>(
          params, torch::optim::AdagradOptions(o.lr)
                      .eps(o.eps)
                      .initial_accumulator_value(o.initial_accumulator)
                      .weight_decay(o.weight_decay));
    case OptimizerSpec::Kind::kAdam:
      return std::make_unique<torch::optim::Adam>(
          params, torch::optim::AdamOptions(o.lr)
                      .betas({static_cast<double>(o.beta1), static_cast<double>(o.beta2)})
                      .eps(o.eps)
                      .weight_decay(o.weight_decay));
    case OptimizerSpec::Kind::kRowwiseAdagrad:
    case OptimizerSpec::Kind::kFtrl:
      break;  // no torch::optim counterpart: tested separately
  }
  return nullptr;
}

// Memory-only (data_dir empty) or RocksDB-backed with a budget of 3 rows of `spec` per shard.
InProcessOptions Storage(int num_shards, bool backed, const TableSpec& spec, const std::string& dir) {
  InProcessOptions o;
  o.num_shards = num_shards;
  if (backed) {
    o.data_dir = dir;
    o.cache_bytes = 3 * num_shards * RowCache::RowBytes(spec.dim + RowOptimizer(spec.optimizer, spec.dim).state_floats());
    o.flush_log_bytes = 2 << 10;
  }
  return o;
}

void RunEquivalence(const Case& c, bool backed) {
  std::printf("  %s PS:", backed ? "RocksDB-backed" : "memory-only");
  std::mt19937_64 rng(7 + static_cast<int>(c.opt.kind) * 101 + c.fixed_id_set);
  // Vocabulary: arbitrary 64-bit ids (negative ones too), vocab index v <-> ids[v].
  std::vector<int64_t> vocab(kVocab);
  for (auto& id : vocab) id = static_cast<int64_t>(rng());

  TableSpec spec;
  spec.name = "t";
  spec.dim = kDim;
  spec.init.std = 0.1f;  // large enough for weight decay to matter
  spec.optimizer = c.opt;
  // Table index 1: the PS must route and initialize per table index.
  const testing::ScopedTempDir dir("equivalence");
  auto ps = MakeInProcessPs({TableSpec{"other", 4, {}, {}}, spec}, Storage(c.num_shards, backed, spec, dir));

  std::vector<float> init(kVocab * kDim);
  ps->Pull(1, vocab.data(), kVocab, init.data(), /*read_only=*/true);

  torch::nn::Embedding emb(kVocab, kDim);
  {
    torch::NoGradGuard no_grad;
    emb->weight.copy_(torch::from_blob(init.data(), {kVocab, kDim}, torch::kFloat32));
  }
  auto opt = MakeTorchOptimizer(c.opt, emb->parameters());

  std::vector<bool> touched(kVocab, false);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int step = 0; step < kSteps; ++step) {
    // A batch of vocabulary indices with duplicates.
    std::vector<int64_t> batch;
    if (c.fixed_id_set) {
      for (int v = 0; v < kTouched; ++v) batch.push_back(v);
      while (static_cast<int>(batch.size()) < kBatch) batch.push_back(rng() % kTouched);
      std::shuffle(batch.begin(), batch.end(), rng);
    } else {
      for (int k = 0; k < kBatch; ++k) batch.push_back(rng() % kVocab);
      for (int k = 0; k < 4; ++k) batch.push_back(batch[k]);  // guaranteed duplicates
    }
    const int64_t b = static_cast<int64_t>(batch.size());
    std::vector<float> upstream(b * kDim);
    for (float& u : upstream) u = normal(rng);

    // Torch: dense embedding, loss = sum(embedding(ids) * upstream).
    opt->zero_grad();
    auto idx = torch::from_blob(batch.data(), {b}, torch::kInt64).clone();
    auto up = torch::from_blob(upstream.data(), {b, kDim}, torch::kFloat32).clone();
    auto loss = (emb->forward(idx) * up).sum();
    loss.backward();
    opt->step();

    // PS: dedupe, sum the upstream gradient per unique id in batch order, push.
    std::vector<int64_t> uniq_ids;
    std::vector<float> grads;
    std::unordered_map<int64_t, size_t> slot;
    for (int64_t k = 0; k < b; ++k) {
      const int64_t v = batch[k];
      touched[v] = true;
      auto it = slot.find(v);
      if (it == slot.end()) {
        it = slot.emplace(v, uniq_ids.size()).first;
        uniq_ids.push_back(vocab[v]);
        grads.insert(grads.end(), kDim, 0.f);
      }
      for (int j = 0; j < kDim; ++j) grads[it->second * kDim + j] += upstream[k * kDim + j];
    }
    ps->Push(1, uniq_ids.data(), static_cast<int64_t>(uniq_ids.size()), grads.data());
  }

  std::vector<float> rows(kVocab * kDim);
  ps->Pull(1, vocab.data(), kVocab, rows.data(), /*read_only=*/true);
  auto w = emb->weight.detach().contiguous();
  const float* tw = w.data_ptr<float>();
  double max_diff = 0, max_move = 0;
  int compared = 0;
  for (int v = 0; v < kVocab; ++v) {
    for (int j = 0; j < kDim; ++j) {
      const float got = rows[v * kDim + j];
      if (touched[v]) {
        EXPECT_NEAR(got, tw[v * kDim + j], 1e-6) << "vocab " << v << " element " << j;
        max_diff = std::max(max_diff, std::fabs(static_cast<double>(got) - tw[v * kDim + j]));
        max_move = std::max(max_move, std::fabs(static_cast<double>(got) - init[v * kDim + j]));
      } else {
        EXPECT_EQ(got, init[v * kDim + j]) << "untouched vocab " << v << " moved";  // lazy
      }
    }
    compared += touched[v];
  }
  EXPECT_GE(compared, c.fixed_id_set ? kTouched : kVocab / 2);
  if (backed) {
    int64_t evictions = 0, flushes = 0;
    for (const ShardStats& s : ps->Stats()) evictions += s.evictions, flushes += s.flushes;
    EXPECT_GT(evictions, 0) << "the budget should force evictions";
    std::printf(" [%lld evictions, %lld flushes]", static_cast<long long>(evictions), static_cast<long long>(flushes));
  }
  EXPECT_GT(max_move, 1e-3) << "rows barely moved: the comparison would prove nothing";
  std::printf(" compared %d rows, max |ps - torch| = %.3g, max |move| = %.3g\n", compared,
              max_diff, max_move);
}

void RunEquivalence(const Case& c) {
  RunEquivalence(c, /*backed=*/false);
  RunEquivalence(c, /*backed=*/true);
}

// Row-wise Adagrad (FBGEMM's EXACT_ROWWISE_ADAGRAD) written with tensor ops on a dense table:
// G = dense gradient (duplicates summed); for the rows of the batch: g = G + wd * W,
// acc += mean(g^2, dim 1); W -= lr * g / (sqrt(acc) + eps). Other rows stay (lazy).
void RunRowwiseAdagrad(float lr, float init_acc, float wd, int num_shards, bool backed) {
  std::printf("  %s PS:", backed ? "RocksDB-backed" : "memory-only");
  std::mt19937_64 rng(77);
  std::vector<int64_t> vocab(kVocab);
  for (auto& id : vocab) id = static_cast<int64_t>(rng());
  TableSpec spec;
  spec.name = "rowwise";
  spec.dim = kDim;
  spec.init.std = 0.1f;
  spec.optimizer.kind = OptimizerSpec::Kind::kRowwiseAdagrad;
  spec.optimizer.lr = lr;
  spec.optimizer.eps = 1e-8f;
  spec.optimizer.initial_accumulator = init_acc;
  spec.optimizer.weight_decay = wd;
  const testing::ScopedTempDir dir("equivalence");
  auto ps = MakeInProcessPs({spec}, Storage(num_shards, backed, spec, dir));
  std::vector<float> init(kVocab * kDim);
  ps->Pull(0, vocab.data(), kVocab, init.data(), /*read_only=*/true);

  torch::Tensor w = torch::from_blob(init.data(), {kVocab, kDim}, torch::kFloat32).clone();
  torch::Tensor acc = torch::full({kVocab}, init_acc, torch::kFloat32);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int step = 0; step < kSteps; ++step) {
    std::vector<int64_t> batch;
    for (int k = 0; k < kBatch; ++k) batch.push_back(rng() % kVocab);
    for (int k = 0; k < 4; ++k) batch.push_back(batch[k]);
    const int64_t b = static_cast<int64_t>(batch.size());
    std::vector<float> upstream(b * kDim);
    for (float& u : upstream) u = normal(rng);
    auto idx = torch::from_blob(batch.data(), {b}, torch::kInt64).clone();
    auto up = torch::from_blob(upstream.data(), {b, kDim}, torch::kFloat32).clone();

    auto param = w.clone().requires_grad_(true);
    (param.index_select(0, idx) * up).sum().backward();
    {
      torch::NoGradGuard no_grad;
      auto touched = torch::zeros({kVocab}, torch::kBool).index_fill_(0, idx, true);
      auto g = param.grad() + wd * w;
      auto acc_new = acc + (g * g).mean(1);
      auto w_new = w - lr * g / (acc_new.sqrt() + spec.optimizer.eps).unsqueeze(1);
      w = torch::where(touched.unsqueeze(1), w_new, w);
      acc = torch::where(touched, acc_new, acc);
    }

    std::vector<int64_t> uniq_ids;
    std::vector<float> grads;
    std::unordered_map<int64_t, size_t> slot;
    for (int64_t k = 0; k < b; ++k) {
      auto it = slot.find(batch[k]);
      if (it == slot.end()) {
        it = slot.emplace(batch[k], uniq_ids.size()).first;
        uniq_ids.push_back(vocab[batch[k]]);
        grads.insert(grads.end(), kDim, 0.f);
      }
      for (int j = 0; j < kDim; ++j) grads[it->second * kDim + j] += upstream[k * kDim + j];
    }
    ps->Push(0, uniq_ids.data(), static_cast<int64_t>(uniq_ids.size()), grads.data());
  }
  std::vector<float> rows(kVocab * kDim);
  ps->Pull(0, vocab.data(), kVocab, rows.data(), /*read_only=*/true);
  const float* tw = w.data_ptr<float>();
  double max_diff = 0, max_move = 0;
  for (int i = 0; i < kVocab * kDim; ++i) {
    EXPECT_NEAR(rows[i], tw[i], 1e-6) << "vocab " << i / kDim << " element " << i % kDim;
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(rows[i]) - tw[i]));
    max_move = std::max(max_move, std::fabs(static_cast<double>(rows[i]) - init[i]));
  }
  EXPECT_GT(max_move, 1e-3);
  std::printf(" max |ps - torch ops| = %.3g, max |move| = %.3g\n", max_diff, max_move);
}

OptimizerSpec Sgd(float lr, float wd) {
  OptimizerSpec o;
  o.kind = OptimizerSpec::Kind::kSgd;
  o.lr = lr;
  o.weight_decay = wd;
  return o;
}

OptimizerSpec Adagrad(float lr, float init_acc, float wd) {
  OptimizerSpec o;
  o.kind = OptimizerSpec::Kind::kAdagrad;
  o.lr = lr;
  o.eps = 1e-10f;
  o.initial_accumulator = init_acc;
  o.weight_decay = wd;
  return o;
}

OptimizerSpec Adam(float lr, float b1, float b2, float wd) {
  OptimizerSpec o;
  o.kind = OptimizerSpec::Kind::kAdam;
  o.lr = lr;
  o.beta1 = b1;
  o.beta2 = b2;
  o.eps = 1e-8f;
  o.weight_decay = wd;
  return o;
}

TEST(OptimizerEquivalence, SgdMatchesTorch) { RunEquivalence({Sgd(0.05f, 0.f), false, 4}); }
TEST(OptimizerEquivalence, SgdWeightDecayMatchesTorch) { RunEquivalence({Sgd(0.05f, 0.1f), true, 1}); }
TEST(OptimizerEquivalence, AdagradMatchesTorch) { RunEquivalence({Adagrad(0.1f, 0.f, 0.f), false, 3}); }
TEST(OptimizerEquivalence, AdagradAccumulatorWeightDecayMatchesTorch) {
  RunEquivalence({Adagrad(0.1f, 0.1f, 0.05f), true, 4});
}
TEST(OptimizerEquivalence, AdamMatchesTorch) { RunEquivalence({Adam(0.01f, 0.9f, 0.999f, 0.f), true, 4}); }
TEST(OptimizerEquivalence, AdamWeightDecayMatchesTorch) {
  RunEquivalence({Adam(0.02f, 0.8f, 0.99f, 0.1f), true, 7});
}

TEST(OptimizerEquivalence, RowwiseAdagradMatchesTorchOps) {
  for (bool backed : {false, true}) RunRowwiseAdagrad(0.1f, 0.f, 0.f, 3, backed);
}
TEST(OptimizerEquivalence, RowwiseAdagradAccumulatorWeightDecayMatchesTorchOps) {
  for (bool backed : {false, true}) RunRowwiseAdagrad(0.05f, 0.1f, 0.05f, 2, backed);
}

}  // namespace
}  // namespace shardrec::ps
