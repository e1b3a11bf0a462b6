// Prefetch + assembly: dedup per table, gathers, pooling, padding and gradient summation, checked
// against rows pulled directly from the PS and plain LibTorch arithmetic.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "common/hash.h"
#include "data/pipeline.h"
#include "ps/ps_client.h"
#include "test_util.h"
#include "train/embedding_assembler.h"
#include "train/prefetcher.h"

namespace shardrec::train {
namespace {

constexpr int kDim = 3;

data::FeatureSchema Schema() {
  data::FeatureSchema s;
  ps::TableSpec items;
  items.name = "item";
  items.dim = kDim;
  items.init.kind = ps::InitSpec::Kind::kUniform;
  items.init.low = -1;
  items.init.high = 1;
  items.optimizer.kind = ps::OptimizerSpec::Kind::kSgd;
  s.tables = {items};
  auto add = [&](const char* name, data::FeatureKind kind, data::Pooling pooling, int max_len) {
    data::FeatureSpec f;
    f.name = f.column = name;
    f.kind = kind;
    f.table = 0;
    f.dim = kDim;
    f.pooling = pooling;
    f.max_len = max_len;
    f.sparse_index = s.num_sparse++;
    s.features.push_back(f);
  };
  add("item", data::FeatureKind::kSparse, data::Pooling::kMean, 0);
  add("hist_mean", data::FeatureKind::kSequence, data::Pooling::kMean, 50);
  add("hist_sum", data::FeatureKind::kSequence, data::Pooling::kSum, 50);
  add("hist_seq", data::FeatureKind::kSequence, data::Pooling::kConcat, 3);
  s.label_columns = {"label"};
  return s;
}

struct Fixture : ::testing::Test {
  void SetUp() override {
    dir = testing::TempDir("assembler");
    // Row 2 repeats ids across features and has an empty history; row 3's history is longer than
    // max_len 3 for the concat feature.
    std::ofstream(dir + "/d.csv") << "label,item,hist_mean,hist_sum,hist_seq\n"
                                     "1,a,b|c,b|c,b|c\n"
                                     "0,b,,a|a,\n"
                                     "1,c,a|b|c|d,d,a|b|c|d\n";
    schema = Schema();
    ps = ps::MakeInProcessPs(schema.tables, {});
  }
  void TearDown() override { std::filesystem::remove_all(dir); }

  torch::Tensor Row(const std::string& v) {
    int64_t id = static_cast<int64_t>(HashValue(v));
    torch::Tensor r = torch::empty({kDim});
    ps->Pull(0, &id, 1, r.data_ptr<float>(), /*read_only=*/true);
    return r;
  }

  std::string dir;
  data::FeatureSchema schema;
  std::unique_ptr<ps::PsClient> ps;
};

TEST_F(Fixture, GathersPoolsAndPadsLikePlainTorch) {
  data::PipelineOptions o;
  o.batch_size = 16;
  data::BatchPipeline pipeline(schema, {dir + "/d.csv"}, o);
  Prefetcher prefetch(schema, &pipeline, ps.get(), 2, false);
  auto pb = prefetch.Next();
  ASSERT_TRUE(pb);
  EXPECT_EQ(pb->tables[0].ids.size(), 4u);  // a, b, c, d once each, over all four features

  AssembledBatch a = Assemble(schema, *pb, true);
  const auto& f = a.input.features;
  const auto A = Row("a"), B = Row("b"), C = Row("c"), D = Row("d"), Z = torch::zeros({kDim});
  auto close = [](const torch::Tensor& x, const torch::Tensor& y) { return torch::allclose(x, y, 1e-6, 1e-7); };

  EXPECT_TRUE(close(f[0].emb, torch::stack({A, B, C})));
  EXPECT_TRUE(close(f[1].emb, torch::stack({(B + C) / 2, Z, (A + B + C + D) / 4})));  // empty -> 0
  EXPECT_TRUE(close(f[2].emb, torch::stack({B + C, A + A, D})));
  // Concat: right-aligned, zero padding in front, the most recent max_len ids kept.
  torch::Tensor seq = torch::stack({torch::stack({Z, B, C}), torch::stack({Z, Z, Z}), torch::stack({B, C, D})});
  EXPECT_TRUE(close(f[3].emb, seq));
  EXPECT_TRUE(torch::equal(f[3].mask, torch::tensor({0, 1, 1, 0, 0, 0, 1, 1, 1}).view({3, 3}).to(torch::kBool)));
  EXPECT_TRUE(torch::equal(f[3].lengths, torch::tensor({2, 0, 3}, torch::kInt64)));

  // The gradient of a row is the sum over every place it was used (duplicates included).
  torch::Tensor loss = f[0].emb.sum() + f[1].emb.sum() + f[2].emb.sum() + f[3].emb.sum();
  loss.backward();
  torch::Tensor g = a.rows[0].grad();
  auto grad_of = [&](const std::string& v) {
    int32_t p = pb->tables[0].index.Find(static_cast<int64_t>(HashValue(v)));
    return g[p];
  };
  // a: item(row 1) 1 + mean(row 3) 1/4 + sum(row 2) 2 + concat(row 3: truncated away) 0
  EXPECT_TRUE(close(grad_of("a"), torch::full({kDim}, 1 + 0.25 + 2)));
  // b: item(row 2) 1 + mean(rows 1, 3) 1/2 + 1/4 + sum(row 1) 1 + concat(rows 1, 3) 1 + 1
  EXPECT_TRUE(close(grad_of("b"), torch::full({kDim}, 1 + 0.5 + 0.25 + 1 + 2)));
  // The padding row gets no gradient.
  EXPECT_TRUE(close(g[g.size(0) - 1], Z));
}

TEST_F(Fixture, EvaluationDoesNotGrowTables) {
  data::PipelineOptions o;
  data::BatchPipeline pipeline(schema, {dir + "/d.csv"}, o);
  Prefetcher prefetch(schema, &pipeline, ps.get(), 1, /*read_only=*/true);
  while (auto pb = prefetch.Next()) prefetch.Recycle(std::move(pb));
  EXPECT_EQ(ps->num_rows(), 0);
}

}  // namespace
}  // namespace shardrec::train
