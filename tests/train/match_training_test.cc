// The item catalogue and its model input (rows served from a batch or pulled from the PS), and
// matching training end to end on generated `match` data through MatchTrainer: Recall@10 far
// above random and above an untrained model, every loss mode and negative source, auxiliary
// tasks, and the eval path (a finished run reopened) giving the run's own test metrics.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/config_loader.h"
#include "data/feature_schema.h"
#include "data/generator.h"
#include "ps/ps_client.h"
#include "test_util.h"
#include "train/item_catalog.h"
#include "train/match_trainer.h"

namespace shardrec::train {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Catalogue

// item (sparse, table 0, dim 4), cate (sparse, table 1, dim 2), price (dense).
data::FeatureSchema CatalogSchema() {
  data::FeatureSchema s;
  data::FeatureSpec item, cate, price;
  item.name = "item";
  item.table = 0;
  item.dim = 4;
  item.sparse_index = 0;
  cate.name = "cate";
  cate.table = 1;
  cate.dim = 2;
  cate.sparse_index = 1;
  price.name = "price";
  price.kind = data::FeatureKind::kDense;
  price.dense_index = 0;
  s.features = {item, cate, price};
  ps::TableSpec t0, t1;
  t0.name = "item";
  t0.dim = 4;
  t1.name = "cate";
  t1.dim = 2;
  t0.init.std = t1.init.std = 1.0f;
  s.tables = {t0, t1};
  s.num_sparse = 2;
  s.num_dense = 1;
  s.label_columns = {"label"};
  return s;
}

data::Batch CatalogBatch() {
  // Rows: item 100 (cate 1, price 0.5, label 1), item 200 (cate 2, 1.5, label 0), item 100 again
  // (label 1), item 300 (cate 1, 2.5, label 1).
  data::Batch b;
  b.rows = 4;
  b.labels = {1, 0, 1, 1};
  b.num_dense = 1;
  b.dense = {0.5f, 1.5f, 0.5f, 2.5f};
  b.sparse.resize(2);
  b.sparse[0].ids = {100, 200, 100, 300};
  b.sparse[1].ids = {1, 2, 1, 1};
  for (auto& c : b.sparse) c.offsets = {0, 1, 2, 3, 4};
  return b;
}

torch::Tensor Pulled(ps::PsClient& ps, int table, std::vector<int64_t> ids, int dim) {
  std::vector<float> rows(ids.size() * dim);
  ps.Pull(table, ids.data(), static_cast<int64_t>(ids.size()), rows.data(), /*read_only=*/true);
  return torch::from_blob(rows.data(), {static_cast<int64_t>(ids.size()), dim}, torch::kFloat32).clone();
}

TEST(ItemCatalogTest, KeepsFirstFeaturesAndCountsPositives) {
  const data::FeatureSchema schema = CatalogSchema();
  ItemCatalog catalog(schema, {0, 1, 2}, 0);
  catalog.AddBatch(CatalogBatch(), /*count_positives=*/true);
  ASSERT_EQ(catalog.size(), 3);
  EXPECT_EQ(catalog.ids(), (std::vector<int64_t>{100, 200, 300}));
  EXPECT_EQ(catalog.counts(), (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(catalog.total_count(), 3);
  EXPECT_EQ(catalog.Find(300), 2);
  EXPECT_EQ(catalog.Find(7), -1);
  int64_t n = 0;
  EXPECT_EQ(catalog.feature_ids(1, 1, &n)[0], 2);
  EXPECT_FLOAT_EQ(catalog.dense_value(2, 2), 2.5f);
  catalog.AddBatch(CatalogBatch(), /*count_positives=*/false);  // validation rows add no counts
  EXPECT_EQ(catalog.total_count(), 3);
}

TEST(CatalogInputTest, PullsOnlyWhatTheBatchLacksAndGradientsReachBothSources) {
  const data::FeatureSchema schema = CatalogSchema();
  ItemCatalog catalog(schema, {0, 1, 2}, 0);
  catalog.AddBatch(CatalogBatch(), true);
  auto ps = ps::MakeInProcessPs(schema.tables, ps::InProcessOptions{2});

  // Without a batch: every row from the PS; -1 gives zero rows.
  CatalogInput input(schema, catalog);
  const std::vector<int64_t> items = {1, 0, 1, -1};
  input.Prepare(items.data(), 4, nullptr, ps.get(), /*read_only=*/true);
  models::ModelInput in = input.Assemble({}, false);
  torch::Tensor rows = Pulled(*ps, 0, {200, 100, 200}, 4);
  EXPECT_TRUE(torch::equal(in.features[0].emb.narrow(0, 0, 3), rows));
  EXPECT_TRUE(torch::equal(in.features[0].emb[3], torch::zeros({4})));
  EXPECT_TRUE(torch::equal(in.features[1].emb.narrow(0, 0, 3), Pulled(*ps, 1, {2, 1, 2}, 2)));
  EXPECT_TRUE(torch::equal(in.dense.squeeze(1), torch::tensor({1.5f, 0.5f, 1.5f, 0.f})));
  EXPECT_EQ(input.pulled_ids(0), (std::vector<int64_t>{200, 100}));

  // A batch that holds item 100 (and cate 1): those come from its rows and are not pulled.
  PreparedBatch pb;
  pb.tables.resize(2);
  pb.tables[0].ids = {100};
  pb.tables[1].ids = {1};
  for (auto& t : pb.tables) {
    t.index.Reset(4);
    bool inserted;
    t.index.Insert(t.ids[0], &inserted);
  }
  pb.tables[0].rows = {9, 9, 9, 9, 0, 0, 0, 0};  // [U + 1, D]: the padding row last
  pb.tables[1].rows = {7, 7, 0, 0};
  std::vector<torch::Tensor> leaves = {torch::from_blob(pb.tables[0].rows.data(), {2, 4}).requires_grad_(true),
                                       torch::from_blob(pb.tables[1].rows.data(), {2, 2}).requires_grad_(true)};
  const std::vector<int64_t> negatives = {0, 1, 2, 0};
  input.Prepare(negatives.data(), 4, &pb, ps.get(), /*read_only=*/false);
  EXPECT_EQ(input.pulled_ids(0), (std::vector<int64_t>{200, 300}));
  EXPECT_EQ(input.pulled_ids(1), (std::vector<int64_t>{2}));
  models::ModelInput neg = input.Assemble(leaves, /*requires_grad=*/true);
  EXPECT_TRUE(torch::equal(neg.features[0].emb[0].detach(), torch::full({4}, 9.f)));
  EXPECT_TRUE(torch::equal(neg.features[0].emb[2].detach(), Pulled(*ps, 0, {300}, 4)[0]));
  (neg.features[0].emb.sum() + neg.features[1].emb.sum()).backward();
  // Item 100 twice through the batch's leaf, items 200 and 300 once each through the pulled one.
  EXPECT_TRUE(torch::equal(leaves[0].grad()[0], torch::full({4}, 2.f)));
  EXPECT_TRUE(torch::equal(input.leaf(0).grad().narrow(0, 0, 2), torch::ones({2, 4})));
  EXPECT_TRUE(torch::equal(leaves[1].grad()[0], torch::full({2}, 3.f)));  // cate 1: items 100, 300, 100
}

// ---------------------------------------------------------------------------------------------
// Training

// Generated match data: 500 movies (random Recall@10 = 10 / 500 = 2%).
std::string MatchJob(const std::string& model, const std::string& matching, int rows = 40000, const std::string& extra = "") {
  std::ostringstream s;
  s << "name: \"m\"\n"
    << "data { synthetic { kind: MATCH rows: " << rows << " seed: 5 vocab_size: 500 } shuffle_buffer: 20000 " << extra << "}\n"
    << "embedding { dim: 16 optimizer { kind: ADAM lr: 0.01 } }\n"
    << "features { name: \"user_id\" }\nfeatures { name: \"gender\" }\nfeatures { name: \"age\" }\n"
    << "features { name: \"occupation\" }\n"
    << "features { name: \"hist_movie_id\" type: SEQUENCE max_len: 30 shared_with: \"movie_id\" }\n"
    << "features { name: \"movie_id\" }\nfeatures { name: \"cate_id\" }\n"
    << "model { " << model << " }\n"
    << "matching { " << matching << " }\n"
    << "trainer { batch_size: 512 epochs: 2 num_threads: 2 progress: QUIET }\n"
    << "ps { num_shards: 2 }\n";
  return s.str();
}

const char kDssm[] =
    "dssm { user_features: [\"user_id\", \"gender\", \"age\", \"occupation\", \"hist_movie_id\"] "
    "item_features: [\"movie_id\", \"cate_id\"] hidden_units: 64 embedding_dim: 32 temperature: 0.05 }";

TEST(MatchTrainingTest, DssmListwiseRecallIsFarAboveRandomAndTheEvalPathAgrees) {
  const std::string dir = testing::TempDir("match-dssm");
  config::Job job = config::ParseJob(
      MatchJob(kDssm, "mode: LISTWISE negatives { num_sampled: 10 logq_correction: true } retrieval { top_k: [10, 50] }"), "m.pbtxt");
  TrainReport r = MatchTrainer(job, dir).Run();
  const double items = r.test.at("items");
  const double random_recall = 10.0 / items;  // a random ranking puts the one target in the top 10 this often
  ASSERT_NEAR(items, 500, 5);
  EXPECT_GT(r.test.at("recall@10"), 5 * random_recall) << "random " << random_recall;
  EXPECT_GT(r.test.at("queries"), 1000);
  EXPECT_GT(r.test.at("ndcg@10"), 0);
  EXPECT_LE(r.test.at("ndcg@10"), r.test.at("recall@10"));
  EXPECT_GE(r.test.at("recall@50"), r.test.at("recall@10"));
  EXPECT_DOUBLE_EQ(r.test.at("recall@10"), r.test.at("hit@10"));  // one target per query
  EXPECT_EQ(r.train_samples, 2 * 32000);
  EXPECT_TRUE(fs::exists(dir + "/dense.pt"));
  EXPECT_TRUE(fs::exists(dir + "/metrics.json"));

  // shardrec eval's path: the run reopened (dense.pt, PS rows) scores the test split the same.
  std::unique_ptr<MatchingRun> run = OpenMatchingRun(job, dir);
  MetricSet again = EvaluateRetrieval(*run->model, run->schema, run->sources.test, run->ps.get(), *run->catalog, run->setup.retrieval);
  EXPECT_NEAR(again.at("recall@10"), r.test.at("recall@10"), 1e-9);
  EXPECT_NEAR(again.at("ndcg@50"), r.test.at("ndcg@50"), 1e-9);

  // An untrained model (fresh weights, fresh rows) stays near random on the same queries.
  auto fresh = CreateMatchModel(job, run->schema);
  auto fresh_ps = ps::MakeInProcessPs(run->schema.tables, ps::InProcessOptions{2});
  MetricSet untrained = EvaluateRetrieval(*fresh, run->schema, run->sources.test, fresh_ps.get(), *run->catalog, run->setup.retrieval);
  EXPECT_LT(untrained.at("recall@10"), 2.5 * random_recall);
  EXPECT_GT(r.test.at("recall@10"), 2 * untrained.at("recall@10"));
  run.reset();
  fs::remove_all(dir);
}

TEST(MatchTrainingTest, EveryModeAndNegativeSourceLearns) {
  struct Case {
    const char* name;
    std::string model, matching;
    double times_random;
  };
  const std::vector<Case> cases = {
      {"facebook-dssm-pairwise-both",
       "facebook_dssm { user_features: [\"user_id\", \"gender\", \"age\", \"occupation\", \"hist_movie_id\"] "
       "item_features: [\"movie_id\", \"cate_id\"] hidden_units: 64 embedding_dim: 32 temperature: 0.05 }",
       "negatives { source: BOTH num_sampled: 3 logq_correction: true }", 4},
      {"youtube-listwise-in-batch",
       "youtube_dnn { user_features: [\"user_id\", \"gender\", \"age\", \"occupation\", \"hist_movie_id\"] "
       "item_features: \"movie_id\" temperature: 0.1 }",
       "negatives { source: IN_BATCH logq_correction: true }", 3},
      {"dssm-pointwise-temperature-1", std::string(kDssm).replace(std::string(kDssm).find("0.05"), 4, "1"), "mode: POINTWISE", 3},
  };
  for (const Case& c : cases) {
    const std::string dir = testing::TempDir(std::string("match-") + c.name);
    config::Job job = config::ParseJob(MatchJob(c.model, c.matching + " retrieval { top_k: 10 }", 30000), "m.pbtxt");
    TrainReport r = MatchTrainer(job, dir).Run();
    const double random_recall = 10.0 / r.test.at("items");
    EXPECT_GT(r.test.at("recall@10"), c.times_random * random_recall) << c.name;
    fs::remove_all(dir);
  }
}

// Facebook DSSM's auxiliary head learns its label: a point-wise "click" task (here a copy of the
// rows' label under another name, so that every row, label 0 included, trains it) next to the
// pair-wise retrieval task, which trains on the positive rows only. An untrained head has AUC 0.5.
TEST(MatchTrainingTest, AuxiliaryTaskTrains) {
  const std::string dir = testing::TempDir("match-aux");
  data::GeneratorOptions g;
  g.kind = data::SyntheticKind::kMatch;
  g.rows = 30000;
  g.seed = 5;
  g.vocab_size = 500;
  std::vector<std::string> files = data::GenerateData(g, dir + "/data");
  for (const std::string& f : files) {  // label -> label,click
    std::ifstream in(f);
    std::ostringstream out;
    std::string line;
    bool header = true;
    while (std::getline(in, line)) {
      out << line << "," << (header ? std::string("click") : line.substr(line.rfind(',') + 1)) << "\n";
      header = false;
    }
    in.close();
    std::ofstream(f) << out.str();
  }
  std::string job_text = MatchJob(
      "facebook_dssm { user_features: [\"user_id\", \"gender\", \"age\", \"occupation\", \"hist_movie_id\"] "
      "item_features: [\"movie_id\", \"cate_id\"] hidden_units: 64 embedding_dim: 32 temperature: 0.05 num_tasks: 2 "
      "task_types: [\"matching\", \"classification\"] }",
      "negatives { num_sampled: 3 logq_correction: true } retrieval { top_k: 10 }", 30000, "label_columns: [\"label\", \"click\"]");
  const std::string synthetic = job_text.substr(job_text.find("synthetic {"), job_text.find("shuffle_buffer") - job_text.find("synthetic {"));
  job_text.replace(job_text.find(synthetic), synthetic.size(),
                   "files { train: \"" + files[0] + "\" validation: \"" + files[1] + "\" test: \"" + files[2] + "\" } ");
  // The head's few dense parameters need a faster dense optimizer than the default 0.001.
  job_text.replace(job_text.find("progress: QUIET"), 15, "progress: QUIET optimizer { lr: 0.01 }");
  config::Job job = config::ParseJob(job_text, "m.pbtxt");
  TrainReport r = MatchTrainer(job, dir).Run();
  ASSERT_TRUE(r.test.count("auc_click")) << "no auxiliary metric";
  EXPECT_GT(r.test.at("auc_click"), 0.6) << "retrieval score's AUC " << r.test.at("auc");
  EXPECT_GT(r.test.at("recall@10"), 3 * 10.0 / r.test.at("items"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace shardrec::train
