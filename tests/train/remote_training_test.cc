// Training against remote PS shards (gRPC ShardServers on loopback) matches the embedded PS.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "config/config_loader.h"
#include "data/feature_schema.h"
#include "ps/shard_server.h"
#include "test_util.h"
#include "train/trainer.h"

namespace shardrec::train {
namespace {

namespace fs = std::filesystem;

std::string Job() {
  std::ostringstream s;
  s << "data { synthetic { kind: CTR rows: 20000 seed: 5 vocab_size: 1000 } }\n"
    << "embedding { dim: 8 optimizer { kind: ADAM lr: 0.005 } }\n";
  s << shardrec::testing::CriteoLikeFeatures();
  s << "model { deepfm { mlp { dims: [32, 16] } } }\n"
    << "trainer { batch_size: 512 epochs: 1 progress: QUIET num_threads: 1 optimizer { lr: 0.003 } }\n";
  return s.str();
}

TEST(RemoteTraining, TwoRemoteShardsMatchEmbedded) {
  const std::string dir = testing::TempDir("remote-training");
  config::Job embedded_job = config::ParseJob(Job(), "inline.pbtxt", {"ps.num_shards=2"});
  TrainReport embedded = Trainer(embedded_job, dir + "/embedded").Run();

  const auto tables = data::BuildSchema(embedded_job).tables;
  std::vector<std::unique_ptr<ps::ShardServer>> servers;
  for (int s = 0; s < 2; ++s) {
    ps::ShardStoreOptions so;
    so.dir = dir + "/servers/shard-" + std::to_string(s);
    ps::ShardServerOptions o;
    o.shard_id = s;
    o.num_shards = 2;
    servers.push_back(std::make_unique<ps::ShardServer>(tables, so, o));
  }
  // One --set per address would replace the list: give it whole.
  config::Job remote_job = config::ParseJob(Job(), "inline.pbtxt",
                                            {"ps.addresses=[" + servers[0]->address() + "," + servers[1]->address() + "]"});
  ASSERT_EQ(remote_job.ps().addresses_size(), 2);
  TrainReport remote = Trainer(remote_job, dir + "/remote").Run();

  // The bar is 0.005; with SYNC pushes and the same routing the runs are in fact equal.
  EXPECT_NEAR(remote.validation.at("auc"), embedded.validation.at("auc"), 0.005);
  EXPECT_DOUBLE_EQ(remote.validation.at("logloss"), embedded.validation.at("logloss"));
  EXPECT_GT(remote.validation.at("auc"), 0.65);
  EXPECT_EQ(remote.ps_rows, embedded.ps_rows);
  servers.clear();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace shardrec::train
