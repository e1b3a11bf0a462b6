// The shared layers against hand compositions of plain tensor ops on the layers' own parameters.
#include "models/layers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "models/dropout.h"
#include "models/model_test_util.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

const char* NameOf(ActivationKind kind) {
  static const char* const kNames[] = {"relu", "prelu", "sigmoid", "leakyrelu", "dice", "tanh"};
  return kNames[static_cast<int>(kind)];
}

// gtest prints parameters with this (found by argument-dependent lookup).
void PrintTo(ActivationKind kind, std::ostream* os) { *os << NameOf(kind); }

namespace {

using testing::DiceByLoop;
using testing::MlpByHand;
using testing::Param;
using testing::SetDeterministicParameters;

std::string ActivationName(const ::testing::TestParamInfo<ActivationKind>& info) { return NameOf(info.param); }

class MlpActivationTest : public ::testing::TestWithParam<ActivationKind> {};

TEST_P(MlpActivationTest, EvalForwardMatchesHandComposition) {
  for (bool output_layer : {true, false}) {
    MlpOptions o;
    o.dims = {8, 6};
    o.dropout = 0.3;  // inactive in eval mode
    o.activation = GetParam();
    o.output_layer = output_layer;
    MLP mlp(5, o);
    SetDeterministicParameters(*mlp, 7);
    mlp->eval();
    torch::Tensor x = torch::randn({9, 5});
    torch::Tensor y = mlp->forward(x);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{9, output_layer ? 1 : 6}));
    EXPECT_EQ(mlp->output_dim(), output_layer ? 1 : 6);
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::allclose(y, MlpByHand(*mlp, "", mlp->options(), x), 1e-4, 1e-5)) << y << MlpByHand(*mlp, "", mlp->options(), x);
  }
}

TEST_P(MlpActivationTest, GradientsReachEveryParameterAndTheInput) {
  MlpOptions o;
  o.dims = {16, 8};
  o.dropout = 0.1;
  o.activation = GetParam();
  MLP mlp(6, o);
  mlp->train();
  torch::manual_seed(3);
  torch::Tensor x = torch::randn({32, 6}, torch::requires_grad());
  torch::Tensor loss = torch::binary_cross_entropy_with_logits(mlp->forward(x).squeeze(1),
                                                               torch::randint(0, 2, {32}).to(torch::kFloat));
  loss.backward();
  for (const auto& p : mlp->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
  ASSERT_TRUE(x.grad().defined());
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0);
}

INSTANTIATE_TEST_SUITE_P(AllActivations, MlpActivationTest,
                         ::testing::Values(ActivationKind::kRelu, ActivationKind::kPrelu, ActivationKind::kSigmoid,
                                           ActivationKind::kLeakyRelu, ActivationKind::kDice, ActivationKind::kTanh),
                         ActivationName);

TEST(MlpTest, RegistersItsLayers) {
  MlpOptions o;
  o.dims = {4, 3};
  o.activation = ActivationKind::kPrelu;
  MLP mlp(5, o);
  std::vector<std::string> names;
  for (const auto& p : mlp->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"linear0.weight", "linear0.bias", "bn0.weight", "bn0.bias",
                                             "act0.prelu.weight", "linear1.weight", "linear1.bias", "bn1.weight",
                                             "bn1.bias", "act1.prelu.weight", "out.weight", "out.bias"}));
  EXPECT_FLOAT_EQ(Param(*mlp, "act0.prelu.weight").item<float>(), 0.25f);
  EXPECT_EQ(Param(*mlp, "act0.prelu.weight").numel(), 1);
}

TEST(MlpTest, WithoutLayersIsTheIdentity) {
  MlpOptions o;
  o.output_layer = false;
  MLP mlp(5, o);
  torch::Tensor x = torch::randn({3, 5});
  EXPECT_TRUE(mlp->forward(x).equal(x));
  EXPECT_EQ(mlp->output_dim(), 5);
  EXPECT_TRUE(mlp->parameters().empty());
}

TEST(MlpTest, PerLayerDropoutOverridesTheCommonRate) {
  MlpOptions o;
  o.dims = {8, 6};
  o.dropout = 0;
  o.dropout_rates = {0, 1};  // the last hidden layer drops everything
  MLP mlp(5, o);
  mlp->train();
  torch::Tensor y = mlp->forward(torch::randn({10, 5}));
  const float bias = Param(*mlp, "out.bias").item<float>();
  EXPECT_TRUE(torch::allclose(y, torch::full({10, 1}, bias))) << y;

  o.dropout_rates = {};  // common rate 0: rows differ
  MLP plain(5, o);
  plain->train();
  y = plain->forward(torch::randn({10, 5}));
  EXPECT_GT((y - y.mean()).abs().max().item<float>(), 1e-4);
}

TEST(MlpTest, RejectsBadOptions) {
  MlpOptions o;
  o.dims = {8, 0};
  EXPECT_THROW(MLP(5, o), ConfigError);
  o.dims = {8, 4};
  o.dropout_rates = {0.1};
  EXPECT_THROW(MLP(5, o), ConfigError);
  o.dropout_rates = {};
  o.dropout = 1.5;
  EXPECT_THROW(MLP(5, o), ConfigError);
  o.dropout = 0;
  EXPECT_THROW(MLP(0, o), ConfigError);
}

TEST(MlpTest, OptionsFromConfig) {
  config::Mlp c;
  MlpOptions o = MlpOptionsFromConfig(c, {256, 128}, true);
  EXPECT_EQ(o.dims, (std::vector<int64_t>{256, 128}));
  EXPECT_EQ(o.activation, ActivationKind::kRelu);
  EXPECT_EQ(o.dropout, 0);
  EXPECT_TRUE(o.output_layer);

  c.add_dims(32);
  c.add_dims(16);
  c.set_dropout(0.2f);
  c.add_dropout_rates(0.5f);
  c.add_dropout_rates(0.25f);
  c.set_activation(config::DICE);
  o = MlpOptionsFromConfig(c, {256, 128}, false);
  EXPECT_EQ(o.dims, (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(o.activation, ActivationKind::kDice);
  EXPECT_FALSE(o.output_layer);
  EXPECT_DOUBLE_EQ(o.DropoutOf(0), 0.5);
  EXPECT_DOUBLE_EQ(o.DropoutOf(1), 0.25);
  const std::pair<config::Activation, ActivationKind> kinds[] = {
      {config::RELU, ActivationKind::kRelu},           {config::PRELU, ActivationKind::kPrelu},
      {config::SIGMOID, ActivationKind::kSigmoid},     {config::LEAKYRELU, ActivationKind::kLeakyRelu},
      {config::DICE, ActivationKind::kDice},           {config::TANH, ActivationKind::kTanh}};
  for (const auto& [c_kind, kind] : kinds) {
    c.set_activation(c_kind);
    EXPECT_EQ(MlpOptionsFromConfig(c, {}, true).activation, kind);
  }
}

TEST(DiceTest, MatchesItsFormula) {
  Dice dice;
  {
    torch::NoGradGuard no_grad;
    dice->alpha.fill_(-0.7);
  }
  EXPECT_DOUBLE_EQ(dice->eps(), 1e-3);
  torch::manual_seed(11);
  for (int64_t width : {1, 3, 16}) {
    torch::Tensor x = torch::randn({5, width}) * 2;
    torch::Tensor y = dice->forward(x);
    EXPECT_TRUE(torch::allclose(y, DiceByLoop(x, -0.7, 1e-3), 1e-5, 1e-6)) << "width " << width;
  }
  // Gradients reach alpha and the input.
  torch::Tensor x = torch::randn({4, 6}, torch::requires_grad());
  dice->forward(x).pow(2).sum().backward();
  EXPECT_GT(dice->alpha.grad().abs().item<float>(), 0);
  EXPECT_GT(x.grad().abs().sum().item<float>(), 0);
}

TEST(FmTest, MatchesPairwiseLoop) {
  torch::manual_seed(5);
  torch::Tensor v = torch::randn({6, 4, 3});
  torch::Tensor pair_sum = torch::zeros({6, 3});
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t j = i + 1; j < 4; ++j) pair_sum += v.select(1, i) * v.select(1, j);
  }
  FM fm;
  EXPECT_TRUE(torch::allclose(fm->forward(v), pair_sum.sum(1, true), 1e-4, 1e-5));
  FM fm_vec(/*reduce_sum=*/false);
  EXPECT_TRUE(torch::allclose(fm_vec->forward(v), pair_sum, 1e-4, 1e-5));
  EXPECT_TRUE(fm->parameters().empty());

  // One field: no pairs.
  EXPECT_TRUE(torch::allclose(fm->forward(v.narrow(1, 0, 1)), torch::zeros({6, 1}), 0, 1e-5));
}

TEST(LrTest, IsALinearTerm) {
  LR lr(7);
  SetDeterministicParameters(*lr, 2);
  torch::Tensor x = torch::randn({5, 7});
  torch::Tensor expected = x.matmul(Param(*lr, "fc.weight").t()) + Param(*lr, "fc.bias");
  EXPECT_TRUE(torch::allclose(lr->forward(x), expected, 1e-5, 1e-6));
  EXPECT_EQ(lr->forward(x).sizes(), (std::vector<int64_t>{5, 1}));
  EXPECT_EQ(LR(7, /*bias=*/false)->parameters().size(), 1u);
}

}  // namespace
}  // namespace shardrec::models

namespace shardrec::models {
namespace {

// Dropout: kept elements scaled by 1/(1-p), the keep rate 1-p, the gradient the same mask, and a
// mask that is repeatable under torch::manual_seed but differs between calls.
TEST(FastDropout, KeepsRateScalesAndRoutesGradient) {
  const double p = 0.2;
  torch::manual_seed(7);
  torch::Tensor x = torch::rand({512, 300}).add_(0.5).requires_grad_(true);
  torch::Tensor y = Dropout(x, p);
  torch::Tensor kept = y.detach().ne(0);
  const double rate = kept.to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(rate, 1 - p, 0.005);  // 153,600 draws: sd ~0.001
  EXPECT_TRUE(torch::allclose(y.detach().masked_select(kept), (x.detach() / (1 - p)).masked_select(kept)));
  y.sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), kept.to(torch::kFloat32) / (1 - p)));

  torch::manual_seed(11);
  torch::Tensor first = Dropout(x.detach(), p);
  torch::manual_seed(11);
  EXPECT_TRUE(torch::equal(Dropout(x.detach(), p), first));
  EXPECT_FALSE(torch::equal(Dropout(x.detach(), p), first));
  EXPECT_TRUE(torch::equal(Dropout(x.detach(), 0.0), x.detach()));
  // Neighbouring elements are not correlated (the 16-bit lanes of one draw are independent).
  torch::Tensor k = kept.to(torch::kFloat64).flatten();
  const double both = (k.slice(0, 0, -1) * k.slice(0, 1)).mean().item<double>();
  EXPECT_NEAR(both, (1 - p) * (1 - p), 0.005);
}

}  // namespace
}  // namespace shardrec::models
