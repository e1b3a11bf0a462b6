// Feature-list resolution, Flatten/Stack layouts, and the CreateModel registry.
#include "models/feature_inputs.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "models/deepfm.h"
#include "models/model_test_util.h"
#include "models/wide_deep.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {
namespace {

using testing::Dense;
using testing::MakeSchema;
using testing::RandomInput;
using testing::Sequence;
using testing::SmallSchema;
using testing::Sparse;

// The ConfigError `f` throws, as text ("" when it throws none).
template <typename F>
std::string ConfigErrorOf(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// SmallSchema order: s0, d0, s1, h0 (mean), c0 (concat), s2, d1.

TEST(ResolveFeaturesTest, EmptyListTakesEverythingThePartCan) {
  const data::FeatureSchema schema = SmallSchema();
  FeatureGroup flat = ResolveFeatures(schema, std::vector<std::string>{}, FeatureUse::kFlat, "f");
  EXPECT_EQ(flat.embedded, (std::vector<int>{0, 2, 3, 5}));
  EXPECT_EQ(flat.names, (std::vector<std::string>{"s0", "s1", "h0", "s2"}));
  EXPECT_EQ(flat.dense_columns, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(flat.flat_dim, 4 * 4 + 2);

  FeatureGroup stacked = ResolveFeatures(schema, std::vector<std::string>{}, FeatureUse::kStacked, "f");
  EXPECT_EQ(stacked.embedded, (std::vector<int>{0, 2, 3, 5}));
  EXPECT_TRUE(stacked.dense_columns.empty());
  EXPECT_EQ(stacked.embed_dim, 4);
  EXPECT_EQ(stacked.num_fields(), 4);
  EXPECT_EQ(stacked.flat_dim, 16);

  // Sum pooling is as good as mean pooling.
  const data::FeatureSchema sums = MakeSchema({Sequence("h", 3, data::Pooling::kSum), Sparse("s", 3)});
  EXPECT_EQ(ResolveFeatures(sums, std::vector<std::string>{}, FeatureUse::kStacked, "f").embedded,
            (std::vector<int>{0, 1}));
}

TEST(ResolveFeaturesTest, ListedNamesKeepTheirOrder) {
  const data::FeatureSchema schema = SmallSchema();
  google::protobuf::RepeatedPtrField<std::string> names;
  for (const char* n : {"d1", "s2", "h0", "d0"}) *names.Add() = n;
  FeatureGroup g = ResolveFeatures(schema, names, FeatureUse::kFlat, "f");
  EXPECT_EQ(g.embedded, (std::vector<int>{5, 3}));
  EXPECT_EQ(g.dense_columns, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(g.flat_dim, 10);
}

TEST(ResolveFeaturesTest, UnknownNameIsAConfigError) {
  const data::FeatureSchema schema = SmallSchema();
  const std::string msg = ConfigErrorOf(
      [&] { ResolveFeatures(schema, {"s0", "no_such_feature"}, FeatureUse::kFlat, "model.wide_deep.deep_features"); });
  EXPECT_NE(msg.find("no_such_feature"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.wide_deep.deep_features"), std::string::npos) << msg;
}

TEST(ResolveFeaturesTest, PartsRejectWhatTheyCannotTake) {
  const data::FeatureSchema schema = SmallSchema();
  std::string msg = ConfigErrorOf([&] { ResolveFeatures(schema, {"s0", "d0"}, FeatureUse::kStacked, "fm"); });
  EXPECT_NE(msg.find("\"d0\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("dense"), std::string::npos) << msg;
  msg = ConfigErrorOf([&] { ResolveFeatures(schema, {"c0"}, FeatureUse::kStacked, "fm"); });
  EXPECT_NE(msg.find("\"c0\""), std::string::npos) << msg;
  msg = ConfigErrorOf([&] { ResolveFeatures(schema, {"s1", "c0"}, FeatureUse::kFlat, "deep"); });
  EXPECT_NE(msg.find("concat"), std::string::npos) << msg;

  const data::FeatureSchema only_concat = MakeSchema({Sequence("c", 4, data::Pooling::kConcat)});
  msg = ConfigErrorOf([&] { ResolveFeatures(only_concat, std::vector<std::string>{}, FeatureUse::kFlat, "deep"); });
  EXPECT_NE(msg.find("no features"), std::string::npos) << msg;
}

TEST(ResolveFeaturesTest, StackedFeaturesNeedOneDimension) {
  const data::FeatureSchema schema = MakeSchema({Sparse("a", 4), Sparse("b", 8), Dense("d")});
  std::string msg = ConfigErrorOf([&] { ResolveFeatures(schema, {"a", "b"}, FeatureUse::kStacked, "fm"); });
  EXPECT_NE(msg.find("\"a\" has 4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"b\" has 8"), std::string::npos) << msg;
  msg = ConfigErrorOf([&] { ResolveFeatures(schema, std::vector<std::string>{}, FeatureUse::kStacked, "fm"); });
  EXPECT_NE(msg.find("explicitly"), std::string::npos) << msg;
  // Flat parts take mixed dimensions.
  EXPECT_EQ(ResolveFeatures(schema, std::vector<std::string>{}, FeatureUse::kFlat, "deep").flat_dim, 13);
  EXPECT_EQ(ResolveFeatures(schema, {"b"}, FeatureUse::kStacked, "fm").embed_dim, 8);
}

TEST(FlattenTest, EmbeddingsInListOrderThenDenseInListOrder) {
  const data::FeatureSchema schema = SmallSchema();
  ModelInput in = RandomInput(schema, 5);
  const torch::Tensor& s0 = in.features[0].emb;
  const torch::Tensor& h0 = in.features[3].emb;
  const torch::Tensor& s2 = in.features[5].emb;
  const torch::Tensor d0 = in.dense.select(1, 0).unsqueeze(1), d1 = in.dense.select(1, 1).unsqueeze(1);

  torch::Tensor flat = Flatten(in, ResolveFeatures(schema, {"d1", "s2", "h0", "d0"}, FeatureUse::kFlat, "f"));
  EXPECT_TRUE(flat.equal(torch::cat({s2, h0, d1, d0}, 1)));

  flat = Flatten(in, ResolveFeatures(schema, {"s0", "d1"}, FeatureUse::kFlat, "f"));
  EXPECT_TRUE(flat.equal(torch::cat({s0, d1}, 1)));

  // One embedding, or the whole dense matrix: no copy.
  EXPECT_TRUE(Flatten(in, ResolveFeatures(schema, {"s2"}, FeatureUse::kFlat, "f")).is_same(s2));
  EXPECT_TRUE(Flatten(in, ResolveFeatures(schema, {"d0", "d1"}, FeatureUse::kFlat, "f")).is_same(in.dense));
  EXPECT_TRUE(Flatten(in, ResolveFeatures(schema, {"d1"}, FeatureUse::kFlat, "f")).equal(d1));

  torch::Tensor stacked = Stack(in, ResolveFeatures(schema, {"s2", "s0", "h0"}, FeatureUse::kStacked, "f"));
  EXPECT_TRUE(stacked.equal(torch::stack({s2, s0, h0}, 1)));
  EXPECT_EQ(Stack(in, ResolveFeatures(schema, {"h0"}, FeatureUse::kStacked, "f")).sizes(),
            (std::vector<int64_t>{5, 1, 4}));
}

TEST(FlattenTest, MissingOrMisshapenEmbeddingsAreReported) {
  const data::FeatureSchema schema = SmallSchema();
  const FeatureGroup g = ResolveFeatures(schema, {"s0", "s1"}, FeatureUse::kFlat, "f");
  ModelInput in = RandomInput(schema, 5);
  in.features[2].emb = torch::Tensor();
  EXPECT_THROW(Flatten(in, g), c10::Error);
  in.features[2].emb = torch::randn({5, 3});
  EXPECT_THROW(Flatten(in, g), c10::Error);
  EXPECT_THROW(Stack(in, g), c10::Error);
}

TEST(CreateModelTest, DispatchesOnTheConfiguredKind) {
  const data::FeatureSchema schema = SmallSchema();
  config::Model c;
  c.mutable_wide_deep()->mutable_mlp()->add_dims(8);
  std::shared_ptr<Model> m = CreateModel(c, schema);
  ASSERT_NE(dynamic_cast<WideDeep*>(m.get()), nullptr);
  EXPECT_EQ(m->num_tasks(), 1);

  c.mutable_deepfm()->mutable_mlp()->add_dims(8);
  m = CreateModel(c, schema);
  ASSERT_NE(dynamic_cast<DeepFM*>(m.get()), nullptr);
  ModelInput in = RandomInput(schema, 3);
  m->eval();
  EXPECT_EQ(m->forward(in).sizes(), (std::vector<int64_t>{3}));

  EXPECT_NE(ConfigErrorOf([&] { CreateModel(config::Model(), schema); }).find("wide_deep"), std::string::npos);
}

TEST(CreateModelTest, ReportsFeaturesAModelCannotTake) {
  const data::FeatureSchema schema = SmallSchema();
  config::Model c;
  c.mutable_deepfm()->add_fm_features("d0");
  std::string msg = ConfigErrorOf([&] { CreateModel(c, schema); });
  EXPECT_NE(msg.find("model.deepfm.fm_features"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"d0\""), std::string::npos) << msg;

  c.mutable_wide_deep()->add_wide_features("typo");
  msg = ConfigErrorOf([&] { CreateModel(c, schema); });
  EXPECT_NE(msg.find("model.wide_deep.wide_features"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"typo\""), std::string::npos) << msg;

  // DeepFM's default FM part over features of two dimensions.
  const data::FeatureSchema mixed = MakeSchema({Sparse("a", 4), Sparse("b", 8)});
  c.mutable_deepfm()->Clear();
  msg = ConfigErrorOf([&] { CreateModel(c, mixed); });
  EXPECT_NE(msg.find("model.deepfm.fm_features"), std::string::npos) << msg;
}

}  // namespace
}  // namespace shardrec::models
