// The multi-task models through the real Trainer on generated MTL data (per-task AUC thresholds
// that an untrained model fails), mixed classification / regression tasks end to end, config
// validation with field paths, and the configs for the Census-Income, Ali-CCP and AliExpress
// sample files (read row by row, and trained end to end).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/hash.h"
#include "config/config_loader.h"
#include "data/feature_schema.h"
#include "data/pipeline.h"
#include "test_util.h"
#include "train/trainer.h"

namespace shardrec {
namespace {

namespace fs = std::filesystem;

// Generated MTL data (D1..D6, C1..C12, click, purchase) and `model` as the model block.
std::string MtlJob(const std::string& model, int rows, const std::string& data_extra = "") {
  std::ostringstream s;
  s << "name: \"mtl\"\n"
    << "data { synthetic { kind: MTL rows: " << rows << " seed: 5 } shuffle_buffer: 20000 " << data_extra << " }\n"
    << "embedding { dim: 4 optimizer { kind: ADAM lr: 0.01 } }\n";
  for (int i = 1; i <= 6; ++i) s << "features { name: \"D" << i << "\" type: DENSE }\n";
  for (int i = 1; i <= 12; ++i) s << "features { name: \"C" << i << "\" }\n";
  s << "model { " << model << " }\n"
    << "trainer { batch_size: 512 epochs: 2 progress: QUIET num_threads: 2 optimizer { lr: 0.003 } }\n"
    << "ps { num_shards: 2 memory_only: true }\n";
  return s.str();
}

train::TrainReport Train(const std::string& name, const config::Job& job) {
  const std::string dir = testing::TempDir("mtl-" + name);
  train::TrainReport r = train::Trainer(job, dir).Run();
  fs::remove_all(dir);
  return r;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The planted signal of the generated data gives a trained model AUC ~0.8 on the click and ~0.85
// on the purchase; an untrained one ~0.5.
void ExpectLearned(const train::TrainReport& r, const std::string& model) {
  EXPECT_GT(r.validation.at("auc_click"), 0.72) << model;
  EXPECT_GT(r.validation.at("auc_purchase"), 0.72) << model;
  EXPECT_GT(r.test.at("auc_click"), 0.72) << model;
  EXPECT_GT(r.test.at("auc_purchase"), 0.72) << model;
  EXPECT_LT(r.validation.at("logloss_click"), 0.60) << model;
}

TEST(MultiTaskTraining, SharedBottomLearnsGeneratedMtl) {
  ExpectLearned(Train("sb", config::ParseJob(MtlJob("shared_bottom { bottom { dims: [64] } }", 30000), "inline.pbtxt")),
                "shared_bottom");
}

TEST(MultiTaskTraining, EsmmLearnsGeneratedMtl) {
  ExpectLearned(Train("esmm", config::ParseJob(MtlJob("esmm { }", 30000), "inline.pbtxt")), "esmm");
}

TEST(MultiTaskTraining, MmoeWithUwlLearnsGeneratedMtl) {
  ExpectLearned(Train("mmoe", config::ParseJob(MtlJob("mmoe { num_experts: 4 loss { kind: UWL } }", 30000), "inline.pbtxt")),
                "mmoe");
}

TEST(MultiTaskTraining, PleWithGradNormLearnsGeneratedMtl) {
  ExpectLearned(Train("ple", config::ParseJob(MtlJob("ple { num_layers: 2 loss { kind: GRADNORM } }", 30000), "inline.pbtxt")),
                "ple");
}

// A regression task first: it reports MSE and MAE; early stopping and the kept epoch follow the
// first classification task (auc_purchase); metrics.json holds every task's metrics.
TEST(MultiTaskTraining, RegressionAndClassificationTasksEndToEnd) {
  const std::string dir = testing::TempDir("mtl-mixed");
  config::Job job = config::ParseJob(
      MtlJob("mmoe { num_experts: 4 task_types: [\"regression\", \"classification\"] }", 20000), "inline.pbtxt",
      {"trainer.epochs=3", "trainer.early_stopping_patience=1"});
  train::TrainReport r = train::Trainer(job, dir).Run();
  for (const char* key : {"mse_click", "mae_click", "auc_purchase", "logloss_purchase"})
    EXPECT_TRUE(r.validation.count(key)) << key;
  EXPECT_FALSE(r.validation.count("auc_click"));
  // A click rate of 0.3: predicting the mean gives MSE 0.21; the regression head learns the signal.
  EXPECT_LT(r.validation.at("mse_click"), 0.19);
  EXPECT_GT(r.validation.at("auc_purchase"), 0.72);
  double best = -1;
  for (const auto& e : r.epochs) best = std::max(best, e.validation.at("auc_purchase"));
  EXPECT_EQ(r.epochs[r.best_epoch - 1].validation.at("auc_purchase"), best);
  const std::string json = ReadFile(dir + "/metrics.json");
  for (const char* key : {"\"mse_click\"", "\"mae_click\"", "\"auc_purchase\"", "\"logloss_purchase\""})
    EXPECT_NE(json.find(key), std::string::npos) << key;
  fs::remove_all(dir);
}

// Only regression tasks: the kept epoch is the one with the lowest MSE of the first task.
TEST(MultiTaskTraining, AllRegressionTasksKeepTheLowestMse) {
  config::Job job = config::ParseJob(
      MtlJob("shared_bottom { bottom { dims: [32] } task_types: [\"regression\", \"regression\"] }", 10000), "inline.pbtxt",
      {"trainer.epochs=3", "trainer.optimizer.lr=0.03"});
  train::TrainReport r = Train("regression", job);
  ASSERT_EQ(r.epochs.size(), 3u);
  ASSERT_GE(r.best_epoch, 1);
  double lowest = 1e9;
  for (const auto& e : r.epochs) lowest = std::min(lowest, e.validation.at("mse_click"));
  EXPECT_EQ(r.epochs[r.best_epoch - 1].validation.at("mse_click"), lowest);
  EXPECT_EQ(r.validation.at("mse_click"), lowest);
  EXPECT_TRUE(r.validation.count("mae_purchase"));
  // Memory-only PS rows cannot be rolled back, so the test split is scored whenever validation
  // improves: only a selection score that exists for regression tasks gets there.
  EXPECT_TRUE(r.test.count("mse_click"));
}

// Untrained (one step of a tiny learning rate) the same models stay near AUC 0.5: the thresholds
// above need learning.
TEST(MultiTaskTraining, UntrainedModelFailsTheThresholds) {
  config::Job job = config::ParseJob(MtlJob("mmoe { num_experts: 4 }", 20000), "inline.pbtxt",
                                     {"trainer.epochs=1", "trainer.max_steps_per_epoch=1", "trainer.optimizer.lr=0.000001",
                                      "embedding.optimizer.lr=0.000001"});
  train::TrainReport r = Train("untrained", job);
  EXPECT_LT(r.validation.at("auc_click"), 0.72);
  EXPECT_LT(r.validation.at("auc_purchase"), 0.72);
}

// ---------------------------------------------------------------------------------------------
// Config validation: bad values are ConfigErrors naming the file, line and field.

void ExpectConfigError(const std::string& model, const std::string& field, const std::string& what,
                       const std::string& data = "") {
  const std::string text = MtlJob(model, 1000, data);
  try {
    config::ParseJob(text, "job.pbtxt");
    ADD_FAILURE() << "no error for " << model;
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("job.pbtxt:"), std::string::npos) << msg;
    EXPECT_NE(msg.find(field), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST(MultiTaskConfig, ValidationNamesTheField) {
  ExpectConfigError("mmoe { num_experts: 0 }", "model.mmoe.num_experts", "must be >= 1");
  ExpectConfigError("mmoe { num_tasks: 3 }", "model.mmoe.num_tasks", "3 tasks, but 2 label column");
  ExpectConfigError("mmoe { task_types: [\"classification\", \"ranking\"] }", "model.mmoe.task_types[1]", "not a task type");
  ExpectConfigError("mmoe { towers { dims: [4] } towers { dims: [4] } towers { dims: [4] } }", "model.mmoe.towers",
                    "one per task");
  ExpectConfigError("mmoe { expert { dims: [0] } }", "model.mmoe.expert.dims[0]", "must be > 0");
  ExpectConfigError("mmoe { loss { weights: [1] } }", "model.mmoe.loss.weights", "one weight per task");
  ExpectConfigError("mmoe { loss { weights: [1, -2] } }", "model.mmoe.loss.weights[1]", ">= 0");
  ExpectConfigError("mmoe { loss { kind: UWL weights: [1, 2] } }", "model.mmoe.loss.weights", "UWL learns");
  ExpectConfigError("mmoe { loss { kind: GRADNORM gradnorm_alpha: -1 } }", "model.mmoe.loss.gradnorm_alpha", ">= 0");
  ExpectConfigError("ple { num_layers: 0 }", "model.ple.num_layers", "must be >= 1");
  ExpectConfigError("ple { num_shared_experts: 0 loss { kind: GRADNORM } }", "model.ple.loss.kind", "GradNorm");
  ExpectConfigError("shared_bottom { features: [\"C1\", \"nope\"] }", "model.shared_bottom.features[1]", "unknown feature");
  ExpectConfigError("shared_bottom { bottom { dropout: 1.5 } }", "model.shared_bottom.bottom.dropout", "[0, 1)");
  ExpectConfigError("esmm { loss { kind: GRADNORM } }", "model.esmm.loss.kind", "give it a bottom");
  ExpectConfigError("esmm { towers { dims: [4] } towers { dims: [4] } towers { dims: [4] } }", "model.esmm.towers", "CTR");
  ExpectConfigError("esmm { }", "data.label_columns", "two label columns", "label_columns: [\"click\"]");
  // A single-task model still refuses two labels.
  ExpectConfigError("deepfm { }", "data.label_columns", "one label");
}

// ---------------------------------------------------------------------------------------------
// The sample-data configs

// A config path, resolved like the CLI run from the repository root, with ../shared replaced by
// the shared folder the tests found.
std::string Resolve(const std::string& path) {
  const std::string shared = "../shared/";
  if (path.rfind(shared, 0) == 0) return testing::SharedDir() + "/" + path.substr(shared.size());
  return (fs::path(SHARDREC_SOURCE_DIR) / path).string();
}

config::Job LoadSampleConfig(const std::string& name) {
  config::Job job = config::LoadJob((fs::path(SHARDREC_SOURCE_DIR) / "configs" / name).string());
  config::Files* f = job.mutable_data()->mutable_files();
  for (auto* list : {f->mutable_train(), f->mutable_validation(), f->mutable_test()})
    for (std::string& p : *list) p = Resolve(p);
  return job;
}

struct Rows {
  std::vector<std::vector<float>> labels;
  std::vector<std::vector<float>> dense;
  std::vector<std::vector<int64_t>> sparse;  // one id per sparse feature
};

Rows ReadRows(const data::FeatureSchema& schema, const std::string& file) {
  data::PipelineOptions o;
  o.batch_size = 7;  // several batches
  data::BatchPipeline pipeline(schema, {file}, o);
  Rows rows;
  data::Batch b;
  while (pipeline.Next(&b)) {
    for (int64_t r = 0; r < b.rows; ++r) {
      rows.labels.emplace_back(b.labels.begin() + r * b.num_labels, b.labels.begin() + (r + 1) * b.num_labels);
      rows.dense.emplace_back(b.dense.begin() + r * b.num_dense, b.dense.begin() + (r + 1) * b.num_dense);
      std::vector<int64_t> ids;
      for (const data::SparseColumn& c : b.sparse) {
        EXPECT_EQ(c.offsets[r + 1] - c.offsets[r], 1);
        ids.push_back(c.ids[c.offsets[r]]);
      }
      rows.sparse.push_back(ids);
    }
  }
  return rows;
}

int Dense(const data::FeatureSchema& s, const std::string& name) {
  for (const auto& f : s.features)
    if (f.name == name) return f.dense_index;
  ADD_FAILURE() << "no feature " << name;
  return 0;
}
int Sparse(const data::FeatureSchema& s, const std::string& name) {
  for (const auto& f : s.features)
    if (f.name == name) return f.sparse_index;
  ADD_FAILURE() << "no feature " << name;
  return 0;
}
int64_t Id(const std::string& v) { return static_cast<int64_t>(HashValue(v)); }

double Sum(const Rows& r, int label) {
  double s = 0;
  for (const auto& l : r.labels) s += l[static_cast<size_t>(label)];
  return s;
}

TEST(MultiTaskSamples, CensusIncome) {
  SHARDREC_REQUIRE_SAMPLES();
  for (const char* model : {"shared_bottom", "mmoe", "ple"}) {
    config::Job job = LoadSampleConfig(std::string("census/") + model + ".pbtxt");
    const data::FeatureSchema s = data::BuildSchema(job);
    ASSERT_EQ(s.label_columns, (std::vector<std::string>{"income", "marital status"})) << model;
    EXPECT_EQ(s.num_dense, 7);
    EXPECT_EQ(s.num_sparse, 32);
    const Rows train = ReadRows(s, job.data().files().train(0));
    ASSERT_EQ(train.labels.size(), 80u);
    EXPECT_EQ(Sum(train, 0), 5);   // incomes > 50K
    EXPECT_EQ(Sum(train, 1), 27);  // never married
    EXPECT_EQ(ReadRows(s, job.data().files().validation(0)).labels.size(), 20u);
    EXPECT_EQ(ReadRows(s, job.data().files().test(0)).labels.size(), 20u);
    // Line 2: age 0.3333, class of worker 1, industry code 43, income 0, marital status 0.
    // Line 81: age 0.3556, industry code 42, income 0, marital status 1.
    EXPECT_FLOAT_EQ(train.dense[0][static_cast<size_t>(Dense(s, "age"))], 0.3333f);
    EXPECT_EQ(train.sparse[0][static_cast<size_t>(Sparse(s, "class_of_worker"))], Id("1"));
    EXPECT_EQ(train.sparse[0][static_cast<size_t>(Sparse(s, "industry_code"))], Id("43"));
    EXPECT_EQ(train.labels[0], (std::vector<float>{0.f, 0.f}));
    EXPECT_FLOAT_EQ(train.dense[79][static_cast<size_t>(Dense(s, "age"))], 0.3556f);
    EXPECT_EQ(train.sparse[79][static_cast<size_t>(Sparse(s, "industry_code"))], Id("42"));
    EXPECT_EQ(train.labels[79], (std::vector<float>{0.f, 1.f}));
  }
}

TEST(MultiTaskSamples, AliCcp) {
  SHARDREC_REQUIRE_SAMPLES();
  for (const char* model : {"shared_bottom", "mmoe", "ple", "esmm"}) {
    config::Job job = LoadSampleConfig(std::string("ali_ccp/") + model + ".pbtxt");
    const data::FeatureSchema s = data::BuildSchema(job);
    const bool esmm = std::string(model) == "esmm";
    ASSERT_EQ(s.label_columns, esmm ? (std::vector<std::string>{"click", "purchase"}) : (std::vector<std::string>{"purchase", "click"}));
    EXPECT_EQ(s.num_sparse, 23);
    EXPECT_EQ(s.num_dense, esmm ? 0 : 8);
    const Rows train = ReadRows(s, job.data().files().train(0));
    ASSERT_EQ(train.labels.size(), 100u);
    const int click = esmm ? 0 : 1, purchase = esmm ? 1 : 0;
    EXPECT_EQ(Sum(train, click), 7);
    EXPECT_EQ(Sum(train, purchase), 1);
    EXPECT_EQ(ReadRows(s, job.data().files().validation(0)).labels.size(), 50u);
    EXPECT_EQ(ReadRows(s, job.data().files().test(0)).labels.size(), 50u);
    // Line 4: 1,1,1,1,1,1,1,0,1,1,1,2,... (clicked and purchased), 205 = 2, D853 = 0.344.
    EXPECT_EQ(train.labels[2], (std::vector<float>{1.f, 1.f}));
    EXPECT_EQ(train.sparse[2][static_cast<size_t>(Sparse(s, "205"))], Id("2"));
    if (!esmm) EXPECT_FLOAT_EQ(train.dense[2][static_cast<size_t>(Dense(s, "D853"))], 0.344f);
  }
}

TEST(MultiTaskSamples, AliExpress) {
  SHARDREC_REQUIRE_SAMPLES();
  for (const char* model : {"shared_bottom", "mmoe", "ple", "esmm"}) {
    config::Job job = LoadSampleConfig(std::string("aliexpress/") + model + ".pbtxt");
    const data::FeatureSchema s = data::BuildSchema(job);
    const bool esmm = std::string(model) == "esmm";
    EXPECT_EQ(s.num_sparse, 16);
    EXPECT_EQ(s.num_dense, 63);
    const Rows train = ReadRows(s, job.data().files().train(0));
    ASSERT_EQ(train.labels.size(), 100u);
    const int click = esmm ? 0 : 1, conversion = esmm ? 1 : 0;
    EXPECT_EQ(Sum(train, click), 60);
    EXPECT_EQ(Sum(train, conversion), 2);
    EXPECT_EQ(ReadRows(s, job.data().files().validation(0)).labels.size(), 20u);
    // Line 2: 81,9,0,0,0,9,4,25,... (search_id 81 is no feature), click 1, conversion 0.
    EXPECT_EQ(train.sparse[0][static_cast<size_t>(Sparse(s, "categorical_1"))], Id("9"));
    EXPECT_EQ(train.sparse[0][static_cast<size_t>(Sparse(s, "categorical_7"))], Id("25"));
    EXPECT_EQ(train.labels[0][static_cast<size_t>(click)], 1.f);
    EXPECT_EQ(train.labels[0][static_cast<size_t>(conversion)], 0.f);
    EXPECT_FLOAT_EQ(train.dense[0][static_cast<size_t>(Dense(s, "numerical_1"))], 0.f);
  }
}

// Every sample config trains end to end and reports each task's metrics.
TEST(MultiTaskSamples, EveryConfigTrains) {
  SHARDREC_REQUIRE_SAMPLES();
  const std::map<std::string, std::vector<std::string>> configs = {
      {"census", {"shared_bottom", "mmoe", "ple"}},
      {"ali_ccp", {"shared_bottom", "mmoe", "ple", "esmm"}},
      {"aliexpress", {"shared_bottom", "mmoe", "ple", "esmm"}}};
  for (const auto& [folder, models] : configs) {
    for (const std::string& model : models) {
      config::Job job = LoadSampleConfig(folder + "/" + model + ".pbtxt");
      job.mutable_trainer()->set_progress(config::Trainer::QUIET);
      job.mutable_trainer()->set_num_threads(2);
      job.mutable_ps()->set_memory_only(true);  // no RocksDB set-up per run
      const std::string dir = testing::TempDir("mtl-sample");
      train::TrainReport r = train::Trainer(job, dir).Run();
      const data::FeatureSchema s = data::BuildSchema(job);
      for (const std::string& label : s.label_columns) {
        EXPECT_TRUE(r.validation.count("logloss_" + label)) << folder << "/" << model << " " << label;
        EXPECT_TRUE(r.test.count("logloss_" + label)) << folder << "/" << model << " " << label;
      }
      EXPECT_EQ(r.epochs.size(), 2u) << folder << "/" << model;
      EXPECT_TRUE(fs::exists(dir + "/metrics.json"));
      fs::remove_all(dir);
    }
  }
}

}  // namespace
}  // namespace shardrec
