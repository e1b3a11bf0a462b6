// Config errors name file, line and field; overrides replace fields; every shipped config loads.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/error.h"
#include "config/config_loader.h"
#include "data/feature_schema.h"
#include "test_util.h"

namespace shardrec::config {
namespace {

// A valid job; tests break one thing at a time. Line numbers below refer to this text.
const char* kGood = R"(name: "t"
data { synthetic { kind: CTR rows: 1000 } }
embedding { dim: 8 }
tables { name: "shared" dim: 8 }
features { name: "I1" type: DENSE transform: LOG }
features { name: "C1" }
features { name: "C2" table: "shared" }
features { name: "C3" shared_with: "C2" }
model { deepfm { mlp { dims: [16, 8] dropout: 0.1 } } }
trainer { batch_size: 128 epochs: 1 }
)";

std::string ErrorOf(const std::string& text, const std::vector<std::string>& sets = {}) {
  try {
    ParseJob(text, "job.pbtxt", sets);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  size_t p = text.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  return text.replace(p, from.size(), to);
}

TEST(Config, GoodJobLoadsWithDefaults) {
  Job job = ParseJob(kGood, "job.pbtxt");
  EXPECT_EQ(job.trainer().batch_size(), 128);
  EXPECT_DOUBLE_EQ(job.trainer().optimizer().lr(), 1e-3);
  EXPECT_DOUBLE_EQ(job.trainer().optimizer().weight_decay(), 1e-5);
  data::FeatureSchema s = data::BuildSchema(job);
  ASSERT_EQ(s.features.size(), 4u);
  EXPECT_EQ(s.num_dense, 1);
  EXPECT_EQ(s.num_sparse, 3);
  // C1 gets an implicit table; C2 and C3 share the declared one.
  EXPECT_EQ(s.tables.size(), 2u);
  EXPECT_EQ(s.features[2].table, s.features[3].table);
  EXPECT_NE(s.features[1].table, s.features[2].table);
  EXPECT_EQ(s.tables[s.features[2].table].name, "shared");
  EXPECT_FLOAT_EQ(s.tables[0].optimizer.eps, 1e-8f);  // Adam default
  EXPECT_EQ(s.label_columns, std::vector<std::string>{"label"});
}

TEST(Config, UnknownFieldNamesLineAndField) {
  std::string e = ErrorOf(Replace(kGood, "batch_size: 128", "batch_sise: 128"));
  EXPECT_NE(e.find("job.pbtxt:10:"), std::string::npos) << e;
  EXPECT_NE(e.find("batch_sise"), std::string::npos) << e;
}

TEST(Config, WrongTypeNamesLineAndFieldPath) {
  std::string e = ErrorOf(Replace(kGood, "batch_size: 128", "batch_size: \"many\""));
  EXPECT_NE(e.find("job.pbtxt:10:"), std::string::npos) << e;
  EXPECT_NE(e.find("trainer.batch_size"), std::string::npos) << e;
}

TEST(Config, BadEnumValueNamesLine) {
  std::string e = ErrorOf(Replace(kGood, "transform: LOG", "transform: LOGARITHM"));
  EXPECT_NE(e.find("job.pbtxt:5:"), std::string::npos) << e;
  EXPECT_NE(e.find("LOGARITHM"), std::string::npos) << e;
  EXPECT_NE(e.find("features.transform"), std::string::npos) << e;
}

TEST(Config, SyntaxErrorNamesLine) {
  std::string e = ErrorOf(Replace(kGood, "embedding { dim: 8 }", "embedding { dim: 8"));
  EXPECT_NE(e.find("job.pbtxt:"), std::string::npos) << e;
}

TEST(Config, MissingModelNamesField) {
  std::string e = ErrorOf(Replace(kGood, "model { deepfm { mlp { dims: [16, 8] dropout: 0.1 } } }", ""));
  EXPECT_NE(e.find("field model"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
}

TEST(Config, MissingDataSourceNamesLine) {
  std::string e = ErrorOf(Replace(kGood, "data { synthetic { kind: CTR rows: 1000 } }", "data { shuffle_buffer: 10 }"));
  EXPECT_NE(e.find("job.pbtxt:2:"), std::string::npos) << e;
  EXPECT_NE(e.find("field data"), std::string::npos) << e;
}

TEST(Config, BadValueNamesLineAndField) {
  std::string e = ErrorOf(Replace(kGood, "batch_size: 128", "batch_size: -5"));
  EXPECT_NE(e.find("job.pbtxt:10:"), std::string::npos) << e;
  EXPECT_NE(e.find("field trainer.batch_size: must be > 0"), std::string::npos) << e;
}

TEST(Config, UnknownTableNamesFeatureLine) {
  std::string e = ErrorOf(Replace(kGood, "table: \"shared\"", "table: \"nosuch\""));
  EXPECT_NE(e.find("job.pbtxt:7:"), std::string::npos) << e;
  EXPECT_NE(e.find("features[C2].table"), std::string::npos) << e;
  EXPECT_NE(e.find("nosuch"), std::string::npos) << e;
}

TEST(Config, UnknownSharedWithNamesLine) {
  std::string e = ErrorOf(Replace(kGood, "shared_with: \"C2\"", "shared_with: \"C9\""));
  EXPECT_NE(e.find("job.pbtxt:8:"), std::string::npos) << e;
  EXPECT_NE(e.find("features[C3].shared_with"), std::string::npos) << e;
}

TEST(Config, ModelGivenFeatureItCannotTake) {
  // A dense feature cannot enter the FM part.
  std::string e = ErrorOf(Replace(kGood, "deepfm { mlp", "deepfm {\n fm_features: \"C1\"\n fm_features: \"I1\"\n mlp"));
  EXPECT_NE(e.find("job.pbtxt:11:"), std::string::npos) << e;
  EXPECT_NE(e.find("model.deepfm.fm_features[1]"), std::string::npos) << e;
  EXPECT_NE(e.find("cannot go to this part"), std::string::npos) << e;
}

TEST(Config, FmFeaturesNeedOneDim) {
  std::string e = ErrorOf(Replace(kGood, "features { name: \"C1\" }", "features { name: \"C1\" dim: 4 }"));
  EXPECT_NE(e.find("one embedding dim"), std::string::npos) << e;
  EXPECT_NE(e.find("job.pbtxt:9:"), std::string::npos) << e;
}

TEST(Config, DropoutRatesMustMatchLayers) {
  std::string e = ErrorOf(Replace(kGood, "dropout: 0.1", "dropout_rates: [0.1]"));
  EXPECT_NE(e.find("job.pbtxt:9:"), std::string::npos) << e;
  EXPECT_NE(e.find("dropout_rates"), std::string::npos) << e;
}

TEST(Config, DuplicateFeatureNamed) {
  std::string e = ErrorOf(Replace(kGood, "features { name: \"C1\" }", "features { name: \"C2\" }"));
  // The second feature called C2 (line 7) is the duplicate.
  EXPECT_NE(e.find("job.pbtxt:7:"), std::string::npos) << e;
  EXPECT_NE(e.find("duplicate feature 'C2'"), std::string::npos) << e;
}

TEST(Config, OverridesReplaceFields) {
  Job job = ParseJob(kGood, "job.pbtxt",
                     {"trainer.batch_size=4096", "model.deepfm.mlp.dims=[64,32,16]", "name=renamed",
                      "model.deepfm.mlp.activation=prelu", "features[C1].dim=8", "trainer.optimizer.lr=0.01"});
  EXPECT_EQ(job.trainer().batch_size(), 4096);
  ASSERT_EQ(job.model().deepfm().mlp().dims_size(), 3);
  EXPECT_EQ(job.model().deepfm().mlp().dims(2), 16);
  EXPECT_EQ(job.model().deepfm().mlp().activation(), PRELU);
  EXPECT_EQ(job.name(), "renamed");
  EXPECT_EQ(job.features(1).dim(), 8);
  EXPECT_DOUBLE_EQ(job.trainer().optimizer().lr(), 0.01);
}

TEST(Config, OverrideErrorsNameTheOverride) {
  std::string e = ErrorOf(kGood, {"trainer.batch_sise=1"});
  EXPECT_NE(e.find("--set trainer.batch_sise=1"), std::string::npos) << e;
  EXPECT_NE(e.find("no field 'batch_sise'"), std::string::npos) << e;
  e = ErrorOf(kGood, {"trainer.batch_size=lots"});
  EXPECT_NE(e.find("field trainer.batch_size"), std::string::npos) << e;
  // A value that parses but fails validation points at the override, not at the file's line.
  e = ErrorOf(kGood, {"trainer.batch_size=0"});
  EXPECT_NE(e.find("--set trainer.batch_size=0: field trainer.batch_size: must be > 0"), std::string::npos) << e;
  e = ErrorOf(kGood, {"features[C7].dim=3"});
  EXPECT_NE(e.find("no element"), std::string::npos) << e;
  e = ErrorOf(kGood, {"trainer"});
  EXPECT_NE(e.find("FIELD.PATH=VALUE"), std::string::npos) << e;
}

TEST(Config, MissingFileIsAnError) {
  EXPECT_THROW(LoadJob("/nonexistent/x.pbtxt"), ConfigError);
}

TEST(Config, EveryShippedConfigLoads) {
  namespace fs = std::filesystem;
  int n = 0;
  for (const auto& entry : fs::recursive_directory_iterator(fs::path(SHARDREC_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".pbtxt") continue;
    ++n;
    EXPECT_NO_THROW({
      Job job = LoadJob(entry.path().string());
      data::BuildSchema(job);
    }) << entry.path();
  }
  EXPECT_GE(n, 2);
}

}  // namespace
}  // namespace shardrec::config
