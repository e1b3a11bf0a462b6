// The single-process trainer end to end on generated data.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "config/config_loader.h"
#include "test_util.h"
#include "train/trainer.h"

namespace shardrec::train {
namespace {

namespace fs = std::filesystem;

std::string CtrJob(const std::string& model, int rows) {
  std::ostringstream s;
  s << "name: \"t\"\n"
    << "data { synthetic { kind: CTR rows: " << rows << " seed: 3 vocab_size: 1000 } shuffle_buffer: 20000 }\n"
    << "embedding { dim: 8 optimizer { kind: ADAM lr: 0.005 } }\n";
  s << shardrec::testing::CriteoLikeFeatures();
  s << "model { " << model << " { mlp { dims: [64, 32] dropout: 0.1 } } }\n"
    << "trainer { batch_size: 512 epochs: 2 progress: QUIET optimizer { lr: 0.003 } }\n"
    << "ps { num_shards: 3 }\n";
  return s.str();
}

std::string ReadFile(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A trained model must clearly beat what an untrained one gets on this data (AUC ~0.5).
TEST(Trainer, DeepFmLearnsGeneratedCtr) {
  const std::string dir = testing::TempDir("trainer-deepfm");
  config::Job job = config::ParseJob(CtrJob("deepfm", 40000), "inline.pbtxt");
  Trainer trainer(job, dir);
  TrainReport r = trainer.Run();
  ASSERT_EQ(r.epochs.size(), 2u);
  EXPECT_GT(r.validation.at("auc"), 0.70);
  EXPECT_GT(r.test.at("auc"), 0.70);
  EXPECT_LT(r.validation.at("logloss"), 0.60);
  EXPECT_GT(r.train_samples_per_sec, 0);
  EXPECT_GE(r.step_samples_per_sec, r.train_samples_per_sec);
  EXPECT_EQ(r.train_samples, 2 * 32000);
  EXPECT_GT(r.ps_rows, 26);

  std::string json = ReadFile(dir + "/metrics.json");
  for (const char* key : {"\"validation\"", "\"test\"", "\"auc\"", "\"logloss\"", "\"throughput\"",
                          "\"train_samples_per_sec\"", "\"step_samples_per_sec\""})
    EXPECT_NE(json.find(key), std::string::npos) << key << " missing from " << json;
  EXPECT_TRUE(fs::exists(dir + "/dense.pt"));
  fs::remove_all(dir);
}

TEST(Trainer, WideDeepLearnsGeneratedCtr) {
  const std::string dir = testing::TempDir("trainer-widedeep");
  config::Job job = config::ParseJob(CtrJob("wide_deep", 40000), "inline.pbtxt");
  TrainReport r = Trainer(job, dir).Run();
  EXPECT_GT(r.validation.at("auc"), 0.70);
  fs::remove_all(dir);
}

// Prefetching pulls batch k+1 before batch k's push; the refresh of rows pushed since must make
// the run identical to one without prefetching (sync semantics). A missing refresh trains on
// stale rows and drifts.
TEST(Trainer, PrefetchIsInvisibleToTraining) {
  auto run = [](int depth) {
    const std::string dir = testing::TempDir("trainer-prefetch" + std::to_string(depth));
    config::Job job = config::ParseJob(CtrJob("deepfm", 8000), "inline.pbtxt",
                                       {"trainer.prefetch_depth=" + std::to_string(depth), "trainer.epochs=1",
                                        "trainer.num_threads=1", "embedding.dim=4"});
    TrainReport r = Trainer(job, dir).Run();
    fs::remove_all(dir);
    return r;
  };
  TrainReport a = run(0), b = run(3);
  EXPECT_DOUBLE_EQ(a.epochs[0].train_loss, b.epochs[0].train_loss);
  EXPECT_DOUBLE_EQ(a.validation.at("logloss"), b.validation.at("logloss"));
}

// A job resumed from a mid-epoch checkpoint (PS shards, dense weights, optimizer state, data
// position) ends where the uninterrupted job ended (dropout masks differ after the resume).
TEST(Trainer, ResumeFromMidEpochCheckpointFinishesLikeTheWholeRun) {
  const std::string dir = testing::TempDir("trainer-resume");
  config::Job job = config::ParseJob(CtrJob("deepfm", 20000), "inline.pbtxt",
                                     {"trainer.checkpoint_every_steps=10", "trainer.keep_checkpoints=100"});
  TrainReport whole = Trainer(job, dir).Run();
  EXPECT_GT(whole.checkpoints_written, 4);
  // A checkpoint inside the second epoch.
  std::string mid;
  int64_t mid_step = 0;
  for (const auto& e : fs::directory_iterator(dir + "/checkpoints")) {
    const std::string manifest = ReadFile(e.path().string() + "/manifest.pbtxt");
    std::smatch m;
    if (manifest.find("\nepoch: 1\n") != std::string::npos &&
        std::regex_search(manifest, m, std::regex("\nstep: ([0-9]+)\n")) && std::stoll(m[1]) > 0) {
      mid = e.path();
      mid_step = std::stoll(m[1]);
    }
  }
  ASSERT_FALSE(mid.empty()) << "no checkpoint inside epoch 2";
  TrainerOptions o;
  o.resume_from = mid;
  TrainReport resumed = Trainer(job, dir, o).Run();
  EXPECT_EQ(resumed.resumed_from, mid);
  ASSERT_EQ(resumed.epochs.size(), 2u);
  EXPECT_EQ(resumed.epochs[0].train_samples, whole.epochs[0].train_samples);  // epoch 1 comes from the manifest
  EXPECT_EQ(resumed.epochs[1].train_samples, whole.epochs[1].train_samples - mid_step * 512);
  EXPECT_NEAR(resumed.validation.at("auc"), whole.validation.at("auc"), 0.005);
  // A damaged manifest is refused with its file and line.
  std::ofstream(mid + "/manifest.pbtxt") << "epoch: 1\nstep: banana\n";
  o.resume_from = mid;
  try {
    Trainer(job, dir, o).Run();
    ADD_FAILURE() << "a damaged manifest was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(mid + "/manifest.pbtxt:2"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// ASYNC consistency applies pushes behind the steps; it must still learn, and every push must be
// applied before evaluation (the PS holds the rows of all training ids).
TEST(Trainer, AsyncPushesLearnToo) {
  const std::string dir = testing::TempDir("trainer-async");
  config::Job job = config::ParseJob(CtrJob("deepfm", 40000), "inline.pbtxt", {"ps.consistency=ASYNC"});
  TrainReport r = Trainer(job, dir).Run();
  EXPECT_GT(r.validation.at("auc"), 0.70);
  fs::remove_all(dir);
}

// Tables far larger than the PS memory budget train exactly as if everything fit: rows evicted
// to RocksDB and read back are the same rows.
TEST(Trainer, OutOfCoreTablesTrainLikeInMemory) {
  auto run = [](const std::vector<std::string>& sets) {
    const std::string dir = testing::TempDir("trainer-ooc");
    std::vector<std::string> all = {"trainer.epochs=1", "trainer.num_threads=1", "embedding.dim=4"};
    all.insert(all.end(), sets.begin(), sets.end());
    config::Job job = config::ParseJob(CtrJob("deepfm", 8000), "inline.pbtxt", all);
    TrainReport r = Trainer(job, dir).Run();
    fs::remove_all(dir);
    return r;
  };
  TrainReport memory = run({"ps.memory_only=true"});
  TrainReport small = run({"ps.cache_bytes=60000"});  // ~1k rows of the ~25k the run creates
  EXPECT_GT(small.ps_evictions, 10000);
  EXPECT_LT(small.ps_rows_cached, small.ps_rows / 5);
  EXPECT_EQ(small.ps_rows, memory.ps_rows);
  EXPECT_DOUBLE_EQ(small.epochs[0].train_loss, memory.epochs[0].train_loss);
  EXPECT_DOUBLE_EQ(small.validation.at("logloss"), memory.validation.at("logloss"));
}

TEST(Trainer, EarlyStoppingRestoresBestEpoch) {
  const std::string dir = testing::TempDir("trainer-early");
  // A learning rate this high makes validation AUC fall after an epoch or two.
  config::Job job = config::ParseJob(CtrJob("deepfm", 8000), "inline.pbtxt",
                                     {"trainer.epochs=6", "trainer.early_stopping_patience=1",
                                      "trainer.optimizer.lr=0.05", "embedding.optimizer.lr=0.05"});
  TrainReport r = Trainer(job, dir).Run();
  ASSERT_GE(r.best_epoch, 1);
  double best = -1;
  for (const auto& e : r.epochs) best = std::max(best, e.validation.at("auc"));
  EXPECT_EQ(r.epochs[r.best_epoch - 1].validation.at("auc"), best);
  // Stopped no later than patience epochs after the best one.
  EXPECT_LE(static_cast<int>(r.epochs.size()), r.best_epoch + 1);
  // The final validation metrics are re-computed on the restored model (dense weights and PS
  // rows): equal to its epoch's only if both were rolled back.
  EXPECT_DOUBLE_EQ(r.validation.at("auc"), best);
  EXPECT_DOUBLE_EQ(r.validation.at("logloss"), r.epochs[r.best_epoch - 1].validation.at("logloss"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace shardrec::train
