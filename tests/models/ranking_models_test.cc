// WideDeep and DeepFM against hand compositions of LibTorch ops built from the models' own
// parameter tensors; gradient flow; a small learning check.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/deepfm.h"
#include "models/model_test_util.h"
#include "models/wide_deep.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {
namespace {

using testing::MakeSchema;
using testing::ExpectGradientsEverywhere;
using testing::MlpByHand;
using testing::Param;
using testing::RandomInput;
using testing::SetDeterministicParameters;
using testing::SmallSchema;
using testing::Sparse;

// SmallSchema order: s0, d0, s1, h0 (mean), c0 (concat), s2, d1.
struct Inputs {
  torch::Tensor s0, s1, h0, s2, d0, d1;
};
Inputs Unpack(const ModelInput& in) {
  return {in.features[0].emb,
          in.features[2].emb,
          in.features[3].emb,
          in.features[5].emb,
          in.dense.select(1, 0).unsqueeze(1),
          in.dense.select(1, 1).unsqueeze(1)};
}

torch::Tensor LinearByHand(torch::nn::Module& m, const std::string& prefix, const torch::Tensor& x) {
  return x.matmul(Param(m, prefix + "weight").t()) + Param(m, prefix + "bias");
}

// sum_{i<j} <v_i, v_j> over fields, [B, 1].
torch::Tensor PairwiseByLoop(const std::vector<torch::Tensor>& v) {
  torch::Tensor sum = torch::zeros({v[0].size(0), 1});
  for (size_t i = 0; i < v.size(); ++i) {
    for (size_t j = i + 1; j < v.size(); ++j) sum += (v[i] * v[j]).sum(1, true);
  }
  return sum;
}


config::Mlp SmallMlp() {
  config::Mlp mlp;
  mlp.add_dims(8);
  mlp.add_dims(4);
  mlp.set_dropout(0.2f);
  return mlp;
}

TEST(WideDeepTest, ForwardMatchesHandComposition) {
  const data::FeatureSchema schema = SmallSchema();
  config::WideDeep c;
  for (const char* n : {"s0", "d1", "h0"}) c.add_wide_features(n);
  *c.mutable_mlp() = SmallMlp();
  WideDeep model(c, schema);
  SetDeterministicParameters(model, 17);
  model.eval();
  ModelInput in = RandomInput(schema, 6);
  const Inputs x = Unpack(in);

  torch::Tensor y = model.forward(in);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{6}));

  // Wide: listed embeddings, then listed dense. Deep (empty list): every takeable feature.
  torch::Tensor wide = torch::cat({x.s0, x.h0, x.d1}, 1);
  torch::Tensor deep = torch::cat({x.s0, x.s1, x.h0, x.s2, x.d0, x.d1}, 1);
  torch::Tensor expected = LinearByHand(model, "linear.fc.", wide) + MlpByHand(model, "mlp.", model.mlp()->options(), deep);
  EXPECT_TRUE(torch::allclose(y, expected.squeeze(1).detach(), 1e-4, 1e-5)) << y << expected;
}

TEST(WideDeepTest, DefaultsToEveryFeatureAndA256x128Mlp) {
  const data::FeatureSchema schema = SmallSchema();
  WideDeep model(config::WideDeep(), schema);
  EXPECT_EQ(model.wide_features().flat_dim, 18);
  EXPECT_EQ(model.mlp()->options().dims, (std::vector<int64_t>{256, 128}));
  EXPECT_EQ(model.mlp()->input_dim(), 18);
  model.eval();
  EXPECT_EQ(model.forward(RandomInput(schema, 3)).sizes(), (std::vector<int64_t>{3}));
}

TEST(WideDeepTest, GradientsReachEveryParameterAndEmbedding) {
  const data::FeatureSchema schema = SmallSchema();
  config::WideDeep c;
  *c.mutable_mlp() = SmallMlp();
  WideDeep model(c, schema);
  model.train();
  torch::manual_seed(4);
  ModelInput in = RandomInput(schema, 16, /*requires_grad=*/true);
  torch::Tensor labels = torch::randint(0, 2, {16}).to(torch::kFloat);
  torch::binary_cross_entropy_with_logits(model.forward(in), labels).backward();
  const Inputs x = Unpack(in);
  ExpectGradientsEverywhere(model, {x.s0, x.s1, x.h0, x.s2});
}

TEST(DeepFMTest, ForwardMatchesHandComposition) {
  const data::FeatureSchema schema = SmallSchema();
  config::DeepFM c;
  for (const char* n : {"s2", "s0", "h0"}) c.add_fm_features(n);
  for (const char* n : {"d0", "s1"}) c.add_deep_features(n);
  *c.mutable_mlp() = SmallMlp();
  c.mutable_mlp()->set_activation(config::PRELU);
  DeepFM model(c, schema);
  SetDeterministicParameters(model, 23);
  model.eval();
  ModelInput in = RandomInput(schema, 7);
  const Inputs x = Unpack(in);

  torch::Tensor y = model.forward(in);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{7}));

  torch::Tensor first_order = LinearByHand(model, "linear.fc.", torch::cat({x.s2, x.s0, x.h0}, 1));
  torch::Tensor second_order = PairwiseByLoop({x.s2, x.s0, x.h0});
  torch::Tensor deep = MlpByHand(model, "mlp.", model.mlp()->options(), torch::cat({x.s1, x.d0}, 1));
  torch::Tensor expected = (first_order + second_order + deep).squeeze(1).detach();
  EXPECT_TRUE(torch::allclose(y, expected, 1e-4, 1e-4)) << y << expected;
}

TEST(DeepFMTest, DefaultFeatureListsMatchHandComposition) {
  const data::FeatureSchema schema = SmallSchema();
  config::DeepFM c;
  *c.mutable_mlp() = SmallMlp();
  DeepFM model(c, schema);
  SetDeterministicParameters(model, 29);
  model.eval();
  ModelInput in = RandomInput(schema, 5);
  const Inputs x = Unpack(in);
  torch::Tensor expected = LinearByHand(model, "linear.fc.", torch::cat({x.s0, x.s1, x.h0, x.s2}, 1)) +
                           PairwiseByLoop({x.s0, x.s1, x.h0, x.s2}) +
                           MlpByHand(model, "mlp.", model.mlp()->options(),
                                     torch::cat({x.s0, x.s1, x.h0, x.s2, x.d0, x.d1}, 1));
  EXPECT_TRUE(torch::allclose(model.forward(in), expected.squeeze(1).detach(), 1e-4, 1e-4));
  EXPECT_EQ(DeepFM(config::DeepFM(), schema).mlp()->options().dims, (std::vector<int64_t>{256, 128}));
}

TEST(DeepFMTest, GradientsReachEveryParameterAndEmbedding) {
  const data::FeatureSchema schema = SmallSchema();
  config::DeepFM c;
  *c.mutable_mlp() = SmallMlp();
  c.mutable_mlp()->set_activation(config::DICE);
  DeepFM model(c, schema);
  model.train();
  torch::manual_seed(8);
  ModelInput in = RandomInput(schema, 16, /*requires_grad=*/true);
  torch::Tensor labels = torch::randint(0, 2, {16}).to(torch::kFloat);
  torch::binary_cross_entropy_with_logits(model.forward(in), labels).backward();
  const Inputs x = Unpack(in);
  ExpectGradientsEverywhere(model, {x.s0, x.s1, x.h0, x.s2});
}

// Labels from a fixed hidden rule (linear in the features plus the pairwise interactions of the
// embeddings); the embeddings stay fixed, only the dense parameters learn.
TEST(DeepFMTest, LearnsASyntheticRule) {
  torch::manual_seed(2024);
  const int64_t n = 1024, fields = 4, dim = 8;
  std::vector<data::FeatureSpec> specs;
  for (int64_t f = 0; f < fields; ++f) specs.push_back(Sparse("f" + std::to_string(f), dim));
  specs.push_back(testing::Dense("d0"));
  specs.push_back(testing::Dense("d1"));
  const data::FeatureSchema schema = MakeSchema(specs);
  ModelInput in = RandomInput(schema, n);
  for (auto& f : in.features) {
    if (f.emb.defined()) f.emb.mul_(0.5);
  }

  std::vector<torch::Tensor> v;
  for (int64_t f = 0; f < fields; ++f) v.push_back(in.features[f].emb);
  torch::Tensor flat = torch::cat({torch::cat(v, 1), in.dense}, 1);
  torch::Tensor w = torch::randn({flat.size(1), 1});
  torch::Tensor hidden = flat.matmul(w) - 2 * PairwiseByLoop(v) + 0.3;
  torch::Tensor labels = (hidden.squeeze(1) > 0).to(torch::kFloat);

  config::DeepFM c;
  c.mutable_mlp()->add_dims(32);
  c.mutable_mlp()->add_dims(16);
  DeepFM model(c, schema);
  model.train();
  torch::optim::Adam adam(model.parameters(), torch::optim::AdamOptions(1e-2));
  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    adam.zero_grad();
    torch::Tensor loss = torch::binary_cross_entropy_with_logits(model.forward(in), labels);
    loss.backward();
    adam.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  model.eval();
  torch::NoGradGuard no_grad;
  const double eval_loss = torch::binary_cross_entropy_with_logits(model.forward(in), labels).item<double>();
  EXPECT_LT(last, 0.8 * first) << "first " << first << " last " << last;
  EXPECT_LT(eval_loss, 0.8 * first) << "first " << first << " eval " << eval_loss;
}

}  // namespace
}  // namespace shardrec::models
