// DSSM, Facebook DSSM and YouTube DNN against compositions of plain LibTorch ops built from the
// models' own parameter tensors; gradient flow; padding invariance of YouTube DNN's history;
// config errors (model constructors and the validator, with field paths and lines).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "config/config_loader.h"
#include "models/dssm.h"
#include "models/facebook_dssm.h"
#include "models/model_test_util.h"
#include "models/youtube_dnn.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {
namespace {

using testing::Dense;
using testing::MakeSchema;
using testing::MlpByHand;
using testing::Param;
using testing::RandomInput;
using testing::SetDeterministicParameters;
using testing::Sequence;
using testing::Sparse;

// u0, u1 sparse, ud dense, h mean-pooled history (max_len 2), hc concat history (L = 3), i0, i1
// sparse, id dense. Indices: u0 0, u1 1, ud 2, h 3, hc 4, i0 5, i1 6, id 7.
data::FeatureSchema Schema() {
  data::FeatureSpec h = Sequence("h", 4, data::Pooling::kMean);
  h.max_len = 2;
  data::FeatureSpec hc = Sequence("hc", 4, data::Pooling::kConcat);
  hc.max_len = 3;
  return MakeSchema({Sparse("u0", 4), Sparse("u1", 3), Dense("ud"), h, hc, Sparse("i0", 4), Sparse("i1", 2), Dense("id")});
}

// x / max(|x|, 1e-12) written out (torch's F.normalize, as the reference calls it).
torch::Tensor Unit(const torch::Tensor& x) { return x / x.pow(2).sum(1, true).sqrt().clamp_min(1e-12); }

template <typename Config>
void FillTowers(Config* c) {
  for (const char* n : {"u0", "u1", "ud", "h"}) c->add_user_features(n);
  for (const char* n : {"i0", "i1", "id"}) c->add_item_features(n);
  c->add_hidden_units(8);
  c->set_embedding_dim(6);
  c->set_temperature(0.2f);
}

void ExpectAllGradients(torch::nn::Module& model, const std::vector<torch::Tensor>& inputs) {
  for (const auto& p : model.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_TRUE(inputs[i].grad().defined()) << "input " << i;
    EXPECT_GT(inputs[i].grad().abs().sum().item<double>(), 0) << "input " << i;
  }
}

template <typename Fn>
void ExpectConfigError(Fn fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no ConfigError; expected one mentioning " << needle;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(DssmTest, ForwardMatchesHandComposition) {
  const data::FeatureSchema schema = Schema();
  config::Dssm c;
  FillTowers(&c);
  Dssm model(c, schema);
  SetDeterministicParameters(model, 31);
  model.eval();
  ModelInput in = RandomInput(schema, 5);
  const auto& f = in.features;
  torch::Tensor ud = in.dense.narrow(1, 0, 1), id = in.dense.narrow(1, 1, 1);

  // Flatten's layout: the listed embeddings in order, then the listed dense values.
  torch::Tensor u = Unit(MlpByHand(model, "user_mlp.", model.user_mlp()->options(), torch::cat({f[0].emb, f[1].emb, f[3].emb, ud}, 1)));
  torch::Tensor i = Unit(MlpByHand(model, "item_mlp.", model.item_mlp()->options(), torch::cat({f[5].emb, f[6].emb, id}, 1)));
  EXPECT_EQ(model.user_mlp()->options().dims, (std::vector<int64_t>{8, 6}));
  EXPECT_EQ(model.user_mlp()->options().activation, ActivationKind::kPrelu);
  EXPECT_FALSE(model.user_mlp()->options().output_layer);

  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(model.UserEmbedding(in), u, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(model.ItemEmbedding(in), i, 1e-5, 1e-6));
  // The temperature is honoured (the reference ignores it): cos / 0.2.
  torch::Tensor expected = (u * i).sum(1) / 0.2;
  EXPECT_TRUE(torch::allclose(model.forward(in), expected, 1e-4, 1e-5)) << model.forward(in) << expected;
  EXPECT_EQ(model.default_loss(), MatchLoss::kPointwise);

  // Shared candidates [1, C, D]: every user against every item.
  torch::Tensor all = model.Score(u, i.unsqueeze(0));
  EXPECT_TRUE(torch::allclose(all, u.matmul(i.t()) / 0.2, 1e-4, 1e-5));
}

TEST(DssmTest, TowersOfTheirOwnAndDefaults) {
  const data::FeatureSchema schema = Schema();
  config::Dssm c;
  for (const char* n : {"u0", "h"}) c.add_user_features(n);
  c.add_item_features("i0");
  Dssm defaults(c, schema);
  EXPECT_EQ(defaults.user_mlp()->options().dims, (std::vector<int64_t>{256, 128, 64}));
  EXPECT_EQ(defaults.item_mlp()->options().dims, (std::vector<int64_t>{256, 128, 64}));
  EXPECT_DOUBLE_EQ(defaults.temperature(), 1.0);

  c.mutable_user_tower()->add_dims(16);
  c.mutable_user_tower()->add_dims(64);
  c.mutable_user_tower()->set_activation(config::RELU);
  c.mutable_item_tower()->add_dims(64);
  c.mutable_item_tower()->set_dropout(0.1f);
  Dssm own(c, schema);
  EXPECT_EQ(own.user_mlp()->options().dims, (std::vector<int64_t>{16, 64}));
  EXPECT_EQ(own.user_mlp()->options().activation, ActivationKind::kRelu);
  EXPECT_EQ(own.item_mlp()->options().dims, (std::vector<int64_t>{64}));
  EXPECT_EQ(own.item_mlp()->options().activation, ActivationKind::kPrelu);  // unset: the shared PRELU
  EXPECT_NEAR(own.item_mlp()->options().dropout, 0.1, 1e-6);
}

TEST(DssmTest, GradientsReachEveryParameterAndEmbedding) {
  const data::FeatureSchema schema = Schema();
  config::Dssm c;
  FillTowers(&c);
  c.add_dropout_rates(0.1f);
  c.add_dropout_rates(0.1f);
  Dssm model(c, schema);
  model.train();
  torch::manual_seed(3);
  ModelInput in = RandomInput(schema, 12, /*requires_grad=*/true);
  torch::Tensor labels = torch::randint(0, 2, {12}).to(torch::kFloat);
  model.Loss(model.forward(in), labels.unsqueeze(1)).backward();
  ExpectAllGradients(model, {in.features[0].emb, in.features[1].emb, in.features[3].emb, in.features[5].emb, in.features[6].emb});
}

TEST(DssmTest, ConfigErrorsNameTheField) {
  const data::FeatureSchema schema = Schema();
  ExpectConfigError([&] {
    config::Dssm c;
    c.add_user_features("u0");
    Dssm m(c, schema);
  }, "model.dssm.item_features");
  ExpectConfigError([&] {
    config::Dssm c;
    FillTowers(&c);
    c.add_user_features("hc");  // a concat sequence cannot be flattened
    Dssm m(c, schema);
  }, "model.dssm.user_features");
  ExpectConfigError([&] {
    config::Dssm c;
    FillTowers(&c);
    c.mutable_item_tower()->add_dims(5);
    Dssm m(c, schema);
  }, "one width");
  ExpectConfigError([&] {
    config::Dssm c;
    FillTowers(&c);
    c.add_dropout_rates(0.5f);
    Dssm m(c, schema);
  }, "model.dssm.dropout_rates");
}

TEST(FacebookDssmTest, AuxiliaryHeadsMatchHandComposition) {
  const data::FeatureSchema schema = Schema();
  config::FacebookDssm c;
  FillTowers(&c);
  c.set_num_tasks(3);
  for (const char* t : {"matching", "classification", "regression"}) c.add_task_types(t);
  c.set_auxiliary_weight(0.5f);
  FacebookDssm model(c, schema);
  SetDeterministicParameters(model, 37);
  model.eval();
  EXPECT_EQ(model.num_tasks(), 3);
  EXPECT_EQ(model.task_kind(1), TaskKind::kClassification);
  EXPECT_EQ(model.task_kind(2), TaskKind::kRegression);
  EXPECT_EQ(model.default_loss(), MatchLoss::kPairwise);

  ModelInput in = RandomInput(schema, 6);
  const auto& f = in.features;
  torch::Tensor ud = in.dense.narrow(1, 0, 1), id = in.dense.narrow(1, 1, 1);
  torch::Tensor u = Unit(MlpByHand(model, "user_mlp.", model.user_mlp()->options(), torch::cat({f[0].emb, f[1].emb, f[3].emb, ud}, 1)));
  torch::Tensor i = Unit(MlpByHand(model, "item_mlp.", model.item_mlp()->options(), torch::cat({f[5].emb, f[6].emb, id}, 1)));
  // Head t: w_t . (u (.) i) + b_t.
  torch::Tensor w = Param(model, "auxiliary_heads.weight"), b = Param(model, "auxiliary_heads.bias");
  torch::Tensor aux = (u * i).matmul(w.t()) + b;
  torch::Tensor out = model.forward(in).detach();
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{6, 3}));
  EXPECT_TRUE(torch::allclose(out.select(1, 0), (u * i).sum(1) / 0.2, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(out.narrow(1, 1, 2), aux, 1e-4, 1e-5));

  // Loss: BCE(score, label 0) + 0.5 * (BCE(aux 1, label 1) + squared error(aux 2, label 2)).
  torch::Tensor labels = torch::stack({torch::tensor({1., 0., 1., 0., 1., 1.}), torch::tensor({0., 0., 1., 1., 0., 1.}),
                                       torch::tensor({2.5, -1., 0.5, 3., 0., 1.})},
                                      1)
                             .to(torch::kFloat);
  auto bce = [](const torch::Tensor& x, const torch::Tensor& y) {
    torch::Tensor p = 1 / (1 + torch::exp(-x));
    return -(y * torch::log(p) + (1 - y) * torch::log(1 - p)).mean();
  };
  torch::Tensor expected = bce(out.select(1, 0), labels.select(1, 0)) +
                           0.5 * (bce(out.select(1, 1), labels.select(1, 1)) + (out.select(1, 2) - labels.select(1, 2)).pow(2).mean());
  EXPECT_NEAR(model.Loss(out, labels).item<double>(), expected.item<double>(), 1e-5);
  torch::Tensor pred = model.Predict(out);
  EXPECT_TRUE(torch::allclose(pred.select(1, 1), 1 / (1 + torch::exp(-out.select(1, 1))), 1e-6));
  EXPECT_TRUE(torch::allclose(pred.select(1, 2), out.select(1, 2)));
}

TEST(FacebookDssmTest, GradientsReachTheHeadsAndTowers) {
  const data::FeatureSchema schema = Schema();
  config::FacebookDssm c;
  FillTowers(&c);
  c.set_num_tasks(2);
  FacebookDssm model(c, schema);
  model.train();
  torch::manual_seed(5);
  ModelInput in = RandomInput(schema, 10, /*requires_grad=*/true);
  torch::Tensor labels = torch::randint(0, 2, {10, 2}).to(torch::kFloat);
  model.Loss(model.forward(in), labels).backward();
  ExpectAllGradients(model, {in.features[0].emb, in.features[3].emb, in.features[5].emb, in.features[6].emb});
}

TEST(FacebookDssmTest, ConfigErrorsNameTheField) {
  const data::FeatureSchema schema = Schema();
  ExpectConfigError([&] {
    config::FacebookDssm c;
    FillTowers(&c);
    c.set_num_tasks(2);
    c.add_task_types("matching");
    c.add_task_types("ranking");
    FacebookDssm m(c, schema);
  }, "model.facebook_dssm.task_types[1]");
  ExpectConfigError([&] {
    config::FacebookDssm c;
    FillTowers(&c);
    c.set_num_tasks(2);
    c.add_task_types("classification");
    c.add_task_types("classification");
    FacebookDssm m(c, schema);
  }, "model.facebook_dssm.task_types[0]");
  ExpectConfigError([&] {
    config::FacebookDssm c;
    FillTowers(&c);
    c.set_num_tasks(0);
    FacebookDssm m(c, schema);
  }, "model.facebook_dssm.num_tasks");
}

config::YoutubeDnn YoutubeConfig() {
  config::YoutubeDnn c;
  for (const char* n : {"u0", "ud", "h", "hc"}) c.add_user_features(n);
  c.add_item_features("i0");
  c.add_hidden_units(8);
  c.set_max_seq_len(2);
  c.set_activation(config::PRELU);  // a 4-wide ReLU layer often outputs all zeros
  return c;
}

// Right-aligned histories of lengths 3, 2, 1, 0 (padding first, zero rows), L = `width`.
FeatureInput History(const torch::Tensor& items, const std::vector<int64_t>& lengths, int64_t width) {
  const int64_t b = static_cast<int64_t>(lengths.size()), d = items.size(2);
  FeatureInput h;
  h.emb = torch::zeros({b, width, d});
  h.mask = torch::zeros({b, width}, torch::kBool);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t n = lengths[r];
    if (n == 0) continue;
    h.emb[r].narrow(0, width - n, n).copy_(items[r].narrow(0, items.size(1) - n, n));
    h.mask[r].narrow(0, width - n, n).fill_(true);
  }
  h.lengths = torch::tensor(lengths, torch::kInt64);
  return h;
}

TEST(YoutubeDnnTest, ForwardMatchesHandComposition) {
  const data::FeatureSchema schema = Schema();
  YoutubeDnn model(YoutubeConfig(), schema);
  SetDeterministicParameters(model, 41);
  model.eval();
  EXPECT_EQ(model.user_mlp()->options().dims, (std::vector<int64_t>{8, 4}));  // ends in the item dim
  EXPECT_NEAR(model.temperature(), 0.02, 1e-7);
  EXPECT_EQ(model.default_loss(), MatchLoss::kListwise);

  ModelInput in = RandomInput(schema, 4);
  torch::Tensor items = torch::randn({4, 3, 4});
  in.features[4] = History(items, {3, 2, 1, 0}, 3);
  // The last max_seq_len = 2 real items, averaged; an empty history gives zeros.
  torch::Tensor hc_mean = torch::stack({(items[0][1] + items[0][2]) / 2, (items[1][1] + items[1][2]) / 2, items[2][2], torch::zeros({4})});
  torch::Tensor x = torch::cat({in.features[0].emb, in.features[3].emb, in.dense.narrow(1, 0, 1), hc_mean}, 1);
  torch::Tensor u = Unit(MlpByHand(model, "user_mlp.", model.user_mlp()->options(), x));
  torch::Tensor i = Unit(in.features[5].emb);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(model.UserEmbedding(in), u, 1e-5, 1e-6)) << model.UserEmbedding(in) << u;
  EXPECT_TRUE(torch::allclose(model.ItemEmbedding(in), i, 1e-6));
  EXPECT_TRUE(torch::allclose(model.forward(in), (u * i).sum(1) / 0.02, 1e-3, 1e-4));
}

TEST(YoutubeDnnTest, HistoryPaddingDoesNotChangeTheUser) {
  const data::FeatureSchema schema = Schema();
  YoutubeDnn model(YoutubeConfig(), schema);
  SetDeterministicParameters(model, 43);
  model.eval();
  torch::NoGradGuard no_grad;
  ModelInput in = RandomInput(schema, 4);
  torch::Tensor items = torch::randn({4, 3, 4});
  in.features[4] = History(items, {3, 2, 1, 0}, 3);
  torch::Tensor narrow = model.UserEmbedding(in);
  in.features[4] = History(items, {3, 2, 1, 0}, 7);  // four more padding columns
  EXPECT_TRUE(torch::allclose(model.UserEmbedding(in), narrow, 1e-6));
}

TEST(YoutubeDnnTest, GradientsReachEveryParameterAndEmbedding) {
  const data::FeatureSchema schema = Schema();
  YoutubeDnn model(YoutubeConfig(), schema);
  model.train();
  torch::manual_seed(7);
  ModelInput in = RandomInput(schema, 8, /*requires_grad=*/true);
  torch::Tensor labels = torch::randint(0, 2, {8}).to(torch::kFloat);
  model.Loss(model.forward(in), labels.unsqueeze(1)).backward();
  ExpectAllGradients(model, {in.features[0].emb, in.features[3].emb, in.features[4].emb, in.features[5].emb});
}

TEST(YoutubeDnnTest, ConfigErrorsNameTheField) {
  const data::FeatureSchema schema = Schema();
  ExpectConfigError([&] {
    config::YoutubeDnn c = YoutubeConfig();
    c.add_item_features("i1");
    YoutubeDnn m(c, schema);
  }, "model.youtube_dnn.item_features");
  ExpectConfigError([&] {
    config::YoutubeDnn c = YoutubeConfig();
    c.set_embedding_dim(8);
    YoutubeDnn m(c, schema);
  }, "model.youtube_dnn.embedding_dim");
  ExpectConfigError([&] {
    config::YoutubeDnn c = YoutubeConfig();
    c.set_max_seq_len(1);  // h is mean-pooled over max_len 2
    YoutubeDnn m(c, schema);
  }, "model.youtube_dnn.user_features[2]");
}

// The validator reports the same problems with file and line.
TEST(TwoTowerConfigTest, ValidatorNamesFileLineAndField) {
  const std::string head = R"(name: "t"
data { synthetic { kind: MATCH rows: 100 } }
features { name: "user_id" }
features { name: "movie_id" }
features { name: "cate_id" }
features { name: "hist_movie_id" type: SEQUENCE shared_with: "movie_id" }
)";
  auto error_of = [&](const std::string& tail) {
    try {
      config::ParseJob(head + tail, "job.pbtxt");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string e = error_of("model { dssm { user_features: \"user_id\" item_features: \"movie_id\"\n item_tower { dims: 32 } } }\n");
  EXPECT_NE(e.find("job.pbtxt:8"), std::string::npos) << e;
  EXPECT_NE(e.find("model.dssm.item_tower"), std::string::npos) << e;
  e = error_of("model { youtube_dnn { user_features: \"user_id\" item_features: \"movie_id\"\n embedding_dim: 8 } }\n");
  EXPECT_NE(e.find("model.youtube_dnn.embedding_dim"), std::string::npos) << e;
  e = error_of("model { facebook_dssm { user_features: \"user_id\" item_features: \"movie_id\" num_tasks: 2 } }\n");
  EXPECT_NE(e.find("data.label_columns"), std::string::npos) << e;
  e = error_of("model { dssm { user_features: \"user_id\" item_features: \"movie_id\" } }\nmatching { retrieval { metric: \"recall@7\" } }\n");
  EXPECT_NE(e.find("matching.retrieval.metric"), std::string::npos) << e;
  e = error_of("model { deepfm { } }\nmatching { }\n");
  EXPECT_NE(e.find("recall model"), std::string::npos) << e;
  EXPECT_EQ(error_of("model { dssm { user_features: \"user_id\" item_features: \"movie_id\" } }\nmatching { }\n"), "no error");
}

}  // namespace
}  // namespace shardrec::models
