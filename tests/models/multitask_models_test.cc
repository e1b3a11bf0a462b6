// The multi-task models (SharedBottom, ESMM, MMoE, PLE) against hand compositions of LibTorch ops
// built from the models' own parameter tensors; ESMM's loss; mixed classification and regression
// heads; gradient flow; config errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "models/esmm.h"
#include "models/mmoe.h"
#include "models/model_test_util.h"
#include "models/multitask_layers.h"
#include "models/ple.h"
#include "models/shared_bottom.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {
namespace {

using testing::Buffer;
using testing::MlpByHand;
using testing::Param;
using testing::RandomInput;
using testing::SetDeterministicParameters;
using testing::SmallSchema;

// SmallSchema with the two labels of generated MTL data.
data::FeatureSchema MtlSchema() {
  data::FeatureSchema s = SmallSchema();
  s.label_columns = {"click", "purchase"};
  return s;
}

// Flatten() of every flat feature of SmallSchema, by hand: s0, s1, h0, s2, then d0, d1.
torch::Tensor FlatByHand(const ModelInput& in) {
  return torch::cat({in.features[0].emb, in.features[2].emb, in.features[3].emb, in.features[5].emb, in.dense}, 1);
}

// ---------------------------------------------------------------------------------------------
// Plain-op references

torch::Tensor LinearByHand(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) { return x.matmul(w.t()) + b; }

// Eval-mode batch norm over columns [offset, offset + width) of the BatchNorm1d named `bn`.
torch::Tensor BatchNormByHand(torch::nn::Module& m, const std::string& bn, int64_t offset, int64_t width, const torch::Tensor& h) {
  auto slice = [&](const torch::Tensor& t) { return t.narrow(0, offset, width); };
  return (h - slice(Buffer(m, bn + ".running_mean"))) / torch::sqrt(slice(Buffer(m, bn + ".running_var")) + 1e-5) *
             slice(Param(m, bn + ".weight")) +
         slice(Param(m, bn + ".bias"));
}

// Expert e of the ExpertGroup named `g` (e.g. "experts."), as a plain MLP: layer 0 is rows
// e*H0.. of linear0, deeper layers weight<l>[e], bias<l>[e]; relu or per-expert PReLU.
torch::Tensor ExpertByHand(torch::nn::Module& m, const std::string& g, int64_t e, const MlpOptions& o, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  torch::Tensor h = x;
  for (size_t l = 0; l < o.dims.size(); ++l) {
    const std::string n = std::to_string(l);
    const int64_t width = o.dims[l];
    if (l == 0) {
      h = LinearByHand(h, Param(m, g + "linear0.weight").narrow(0, e * width, width), Param(m, g + "linear0.bias").narrow(0, e * width, width));
    } else {
      h = LinearByHand(h, Param(m, g + "weight" + n)[e], Param(m, g + "bias" + n)[e]);
    }
    h = BatchNormByHand(m, g + "bn" + n, e * width, width, h);
    if (o.activation == ActivationKind::kPrelu) {
      const double a = Param(m, g + "act" + n + ".prelu_weight")[e].item<double>();
      h = torch::where(h >= 0, h, a * h);
    } else {
      h = (h + h.abs()) / 2;  // relu
    }
  }
  return h;
}

// Gate g (of G gates over E experts) of the Gate named `prefix`: softmax(BN(Linear(x))) [B, E].
torch::Tensor GateByHand(torch::nn::Module& m, const std::string& prefix, int64_t g, int64_t experts, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  torch::Tensor z = LinearByHand(x, Param(m, prefix + "linear.weight").narrow(0, g * experts, experts),
                                 Param(m, prefix + "linear.bias").narrow(0, g * experts, experts));
  z = BatchNormByHand(m, prefix + "bn", g * experts, experts, z);
  torch::Tensor ez = torch::exp(z - std::get<0>(z.max(1, true)));
  return ez / ez.sum(1, true);
}

// sum_e gate[:, e] * experts[e].
torch::Tensor MixByHand(const torch::Tensor& gate, const std::vector<torch::Tensor>& experts) {
  torch::Tensor out = torch::zeros_like(experts[0]);
  for (size_t e = 0; e < experts.size(); ++e) out += gate.select(1, static_cast<int64_t>(e)).unsqueeze(1) * experts[e];
  return out;
}

config::Mlp MlpConfig(std::vector<int> dims, config::Activation act = config::RELU, float dropout = 0) {
  config::Mlp m;
  for (int d : dims) m.add_dims(d);
  m.set_activation(act);
  m.set_dropout(dropout);
  return m;
}

MlpOptions TowerOpts(TaskTowers& towers, size_t t) { return towers->tower(t)->options(); }

void ExpectGradientsEverywhere(torch::nn::Module& model, const ModelInput& in) {
  for (const auto& p : model.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
  for (int f : {0, 2, 3, 5}) {
    ASSERT_TRUE(in.features[f].emb.grad().defined()) << "feature " << f;
    EXPECT_GT(in.features[f].emb.grad().abs().sum().item<double>(), 0) << "feature " << f;
  }
}

torch::Tensor MtlLabels(int64_t batch) {
  torch::Tensor click = torch::randint(0, 2, {batch, 1}).to(torch::kFloat);
  return torch::cat({click, click * torch::randint(0, 2, {batch, 1}).to(torch::kFloat)}, 1);
}

// ---------------------------------------------------------------------------------------------
// Layers

TEST(ExpertGroupTest, TwoLayerPreluExpertsMatchSeparateMlps) {
  MlpOptions o;
  o.dims = {6, 3};
  o.activation = ActivationKind::kPrelu;
  ExpertGroup g(5, 4, o, "test.expert");
  SetDeterministicParameters(*g, 3);
  g->eval();
  torch::Tensor x = torch::randn({7, 5});
  torch::Tensor y = g->forward(x);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{7, 4, 3}));
  for (int64_t e = 0; e < 4; ++e) {
    torch::Tensor expected = ExpertByHand(*g, "", e, o, x);
    EXPECT_TRUE(torch::allclose(y.select(1, e), expected, 1e-4, 1e-5)) << "expert " << e;
  }
  EXPECT_EQ(g->last_weight().sizes(), (std::vector<int64_t>{4, 3, 6}));
}

TEST(ExpertGroupTest, TrainingModeBatchNormIsPerExpertColumn) {
  MlpOptions o;
  o.dims = {4};
  ExpertGroup g(3, 2, o, "test.expert");
  g->train();
  torch::Tensor x = torch::randn({64, 3});
  torch::Tensor y = g->forward(x);
  // Per expert: Linear then batch statistics of its own 4 columns.
  for (int64_t e = 0; e < 2; ++e) {
    torch::Tensor h = LinearByHand(x, Param(*g, "linear0.weight").narrow(0, e * 4, 4), Param(*g, "linear0.bias").narrow(0, e * 4, 4));
    h = (h - h.mean(0)) / torch::sqrt(h.var(0, /*unbiased=*/false) + 1e-5);
    EXPECT_TRUE(torch::allclose(y.select(1, e).detach(), torch::relu(h), 1e-4, 1e-4)) << "expert " << e;
  }
}

TEST(ExpertGroupTest, RejectsBadShapes) {
  MlpOptions o;
  EXPECT_THROW(ExpertGroup(3, 2, o, "f"), ConfigError);  // no hidden layer
  o.dims = {4};
  EXPECT_THROW(ExpertGroup(3, 0, o, "f"), ConfigError);
  o.dims = {4, 0};
  EXPECT_THROW(ExpertGroup(3, 2, o, "f"), ConfigError);
}

TEST(GateTest, FusedGatesMatchSeparateSoftmaxGates) {
  Gate gate(6, 3, 4, GateOptions{});
  SetDeterministicParameters(*gate, 5);
  gate->eval();
  torch::Tensor x = torch::randn({9, 6});
  torch::Tensor w = gate->forward(x);
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{9, 3, 4}));
  for (int64_t g = 0; g < 3; ++g) EXPECT_TRUE(torch::allclose(w.select(1, g), GateByHand(*gate, "", g, 4, x), 1e-5, 1e-6)) << g;
  EXPECT_TRUE(torch::allclose(w.sum(2), torch::ones({9, 3}), 1e-5, 1e-6));

  GateOptions plain;
  plain.batch_norm = false;
  plain.softmax = false;
  Gate sig(6, 1, 4, plain);
  EXPECT_EQ(sig->named_buffers().size(), 0u);  // no batch norm
  torch::Tensor expected = torch::sigmoid(LinearByHand(x, Param(*sig, "linear.weight"), Param(*sig, "linear.bias")));
  EXPECT_TRUE(torch::allclose(sig->forward(x).squeeze(1), expected.detach(), 1e-5, 1e-6));
}

TEST(TowerOptionsTest, OneForAllOrOnePerTask) {
  EXPECT_EQ(TowerOptions({}, 3, {8}, "f").size(), 3u);
  EXPECT_EQ(TowerOptions({}, 3, {8}, "f")[2].dims, (std::vector<int64_t>{8}));
  EXPECT_EQ(TowerOptions({MlpConfig({5})}, 2, {8}, "f")[1].dims, (std::vector<int64_t>{5}));
  auto per_task = TowerOptions({MlpConfig({5}), MlpConfig({7, 2})}, 2, {8}, "f");
  EXPECT_EQ(per_task[1].dims, (std::vector<int64_t>{7, 2}));
  EXPECT_TRUE(per_task[0].output_layer);
  EXPECT_THROW(TowerOptions({MlpConfig({5}), MlpConfig({5})}, 3, {8}, "f"), ConfigError);
}

// ---------------------------------------------------------------------------------------------
// SharedBottom

TEST(SharedBottomTest, ForwardMatchesHandComposition) {
  const data::FeatureSchema schema = MtlSchema();
  config::SharedBottom c;
  *c.mutable_bottom() = MlpConfig({8, 6});
  *c.add_towers() = MlpConfig({4});
  *c.add_towers() = MlpConfig({3, 2}, config::PRELU);
  SharedBottom model(c, schema);
  SetDeterministicParameters(model, 11);
  model.eval();
  ModelInput in = RandomInput(schema, 6);
  torch::Tensor y = model.forward(in);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{6, 2}));

  torch::Tensor h = MlpByHand(model, "bottom.", model.bottom()->options(), FlatByHand(in));
  for (size_t t = 0; t < 2; ++t) {
    const std::string tower = "towers.tower" + std::to_string(t) + ".";
    torch::Tensor expected = MlpByHand(model, tower, TowerOpts(model.towers(), t), h).squeeze(1);
    EXPECT_TRUE(torch::allclose(y.select(1, static_cast<int64_t>(t)), expected, 1e-4, 1e-5)) << "task " << t;
  }
  // Both tasks are classifications: probabilities, and the summed mean BCEs.
  EXPECT_TRUE(torch::allclose(model.Predict(y), torch::sigmoid(y)));
  torch::Tensor labels = MtlLabels(6);
  torch::Tensor expected_loss = torch::binary_cross_entropy(torch::sigmoid(y.select(1, 0)), labels.select(1, 0)) +
                                torch::binary_cross_entropy(torch::sigmoid(y.select(1, 1)), labels.select(1, 1));
  EXPECT_NEAR(model.Loss(y, labels).item<double>(), expected_loss.item<double>(), 1e-5);
}

TEST(SharedBottomTest, DefaultsAreTheCensusExample) {
  const data::FeatureSchema schema = MtlSchema();
  SharedBottom model(config::SharedBottom(), schema);
  EXPECT_EQ(model.bottom()->options().dims, (std::vector<int64_t>{117}));
  EXPECT_EQ(model.bottom()->input_dim(), 18);  // 4 embeddings of 4 + 2 dense
  EXPECT_EQ(TowerOpts(model.towers(), 1).dims, (std::vector<int64_t>{8}));
  EXPECT_EQ(model.num_tasks(), 2);
  EXPECT_EQ(model.task_kind(1), TaskKind::kClassification);
}

// A classification and a regression head in one model: Predict is sigmoid / identity per column,
// the loss BCE + MSE.
TEST(SharedBottomTest, MixedClassificationAndRegressionHeads) {
  const data::FeatureSchema schema = MtlSchema();
  config::SharedBottom c;
  *c.mutable_bottom() = MlpConfig({8});
  c.add_task_types("regression");
  c.add_task_types("classification");
  SharedBottom model(c, schema);
  EXPECT_EQ(model.task_kind(0), TaskKind::kRegression);
  EXPECT_EQ(model.task_kind(1), TaskKind::kClassification);
  model.train();
  torch::manual_seed(3);
  ModelInput in = RandomInput(schema, 16, /*requires_grad=*/true);
  torch::Tensor y = model.forward(in);
  torch::Tensor p = model.Predict(y);
  EXPECT_TRUE(torch::equal(p.select(1, 0), y.select(1, 0)));
  EXPECT_TRUE(torch::allclose(p.select(1, 1), torch::sigmoid(y.select(1, 1))));

  torch::Tensor labels = torch::stack({torch::randn({16}) * 3 + 1, torch::randint(0, 2, {16}).to(torch::kFloat)}, 1);
  torch::Tensor loss = model.Loss(y, labels);
  const double mse = (y.select(1, 0) - labels.select(1, 0)).square().mean().item<double>();
  const double bce = torch::binary_cross_entropy(torch::sigmoid(y.select(1, 1)), labels.select(1, 1)).item<double>();
  EXPECT_NEAR(loss.item<double>(), mse + bce, 1e-4);
  loss.backward();
  ExpectGradientsEverywhere(model, in);
}

TEST(SharedBottomTest, WeightedSumUsesTheConfiguredWeights) {
  const data::FeatureSchema schema = MtlSchema();
  config::SharedBottom c;
  c.mutable_loss()->add_weights(0.25f);
  c.mutable_loss()->add_weights(3.f);
  SharedBottom model(c, schema);
  model.eval();
  ModelInput in = RandomInput(schema, 8);
  torch::Tensor y = model.forward(in), labels = MtlLabels(8);
  torch::Tensor per_task = model.TaskLosses(y, labels);
  EXPECT_NEAR(model.Loss(y, labels).item<double>(), (0.25 * per_task[0] + 3 * per_task[1]).item<double>(), 1e-5);
}

// ---------------------------------------------------------------------------------------------
// ESMM

TEST(EsmmTest, ForwardAndPredictMatchHandComposition) {
  const data::FeatureSchema schema = MtlSchema();
  config::Esmm c;
  *c.add_towers() = MlpConfig({6, 4});
  *c.add_towers() = MlpConfig({5});
  Esmm model(c, schema);
  EXPECT_FALSE(model.has_bottom());
  SetDeterministicParameters(model, 13);
  model.eval();
  ModelInput in = RandomInput(schema, 7);
  torch::Tensor y = model.forward(in);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{7, 2}));
  torch::Tensor x = FlatByHand(in);
  torch::Tensor a = MlpByHand(model, "towers.tower0.", TowerOpts(model.towers(), 0), x).squeeze(1);
  torch::Tensor b = MlpByHand(model, "towers.tower1.", TowerOpts(model.towers(), 1), x).squeeze(1);
  EXPECT_TRUE(torch::allclose(y.select(1, 0), a, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(y.select(1, 1), b, 1e-4, 1e-5));
  torch::Tensor p_ctr = 1 / (1 + torch::exp(-a)), p_cvr = 1 / (1 + torch::exp(-b));
  torch::Tensor p = model.Predict(y);
  EXPECT_TRUE(torch::allclose(p.select(1, 0), p_ctr, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(p.select(1, 1), p_ctr * p_cvr, 1e-5, 1e-6));
}

// Loss = BCE(pCTR, click) + BCE(pCTR * pCVR, click * purchase), in double precision by hand.
TEST(EsmmTest, LossIsCtrPlusCtcvrBce) {
  const data::FeatureSchema schema = MtlSchema();
  Esmm model(config::Esmm(), schema);
  torch::manual_seed(4);
  torch::Tensor logits = torch::randn({32, 2}) * 3;
  torch::Tensor labels = MtlLabels(32);
  torch::Tensor a = logits.select(1, 0).to(torch::kDouble), b = logits.select(1, 1).to(torch::kDouble);
  torch::Tensor p_ctr = torch::sigmoid(a), p_ctcvr = p_ctr * torch::sigmoid(b);
  torch::Tensor click = labels.select(1, 0).to(torch::kDouble), ctcvr = click * labels.select(1, 1).to(torch::kDouble);
  auto bce = [](const torch::Tensor& p, const torch::Tensor& y) { return -(y * torch::log(p) + (1 - y) * torch::log(1 - p)).mean(); };
  torch::Tensor per_task = model.TaskLosses(logits, labels);
  EXPECT_NEAR(per_task[0].item<double>(), bce(p_ctr, click).item<double>(), 1e-5);
  EXPECT_NEAR(per_task[1].item<double>(), bce(p_ctcvr, ctcvr).item<double>(), 1e-5);
  EXPECT_NEAR(model.Loss(logits, labels).item<double>(), (bce(p_ctr, click) + bce(p_ctcvr, ctcvr)).item<double>(), 1e-5);
  // Saturated logits stay finite (pCTCVR rounds to 1 or 0 in float).
  torch::Tensor extreme = torch::tensor({{40.f, 40.f}, {-40.f, -40.f}, {40.f, -40.f}});
  torch::Tensor extreme_labels = torch::tensor({{0.f, 0.f}, {1.f, 1.f}, {1.f, 1.f}});
  EXPECT_TRUE(torch::isfinite(model.TaskLosses(extreme, extreme_labels)).all().item<bool>());
  EXPECT_NEAR(model.TaskLosses(extreme, extreme_labels)[1].item<double>(), (40 - std::log(2.0) + 80 + 40) / 3.0, 1e-3);
}

// The purchase label of a row without a click never reaches the loss (CTCVR = click * purchase);
// on a clicked row it does.
TEST(EsmmTest, PurchaseWithoutClickChangesNothing) {
  const data::FeatureSchema schema = MtlSchema();
  config::Esmm c;
  *c.mutable_bottom() = MlpConfig({8});
  Esmm model(c, schema);
  model.train();
  torch::manual_seed(6);
  ModelInput in = RandomInput(schema, 12);
  torch::Tensor labels = MtlLabels(12);
  labels[0][0] = 0;  // row 0: no click
  labels[1][0] = 1;  // row 1: click
  auto loss_and_grads = [&](const torch::Tensor& l) {
    model.zero_grad();
    torch::manual_seed(9);  // same batch-norm / dropout state
    torch::Tensor loss = model.Loss(model.forward(in), l);
    loss.backward();
    std::vector<torch::Tensor> grads = {loss.detach().clone()};
    for (const auto& p : model.parameters()) grads.push_back(p.grad().clone());
    return grads;
  };
  const auto base = loss_and_grads(labels);
  torch::Tensor flipped = labels.clone();
  flipped[0][1] = 1 - flipped[0][1];
  const auto same = loss_and_grads(flipped);
  for (size_t i = 0; i < base.size(); ++i) EXPECT_TRUE(torch::equal(base[i], same[i])) << i;
  torch::Tensor clicked = labels.clone();
  clicked[1][1] = 1 - clicked[1][1];
  EXPECT_NE(loss_and_grads(clicked)[0].item<double>(), base[0].item<double>());
}

TEST(EsmmTest, GradientsReachEveryParameterAndEmbedding) {
  const data::FeatureSchema schema = MtlSchema();
  config::Esmm c;
  *c.mutable_bottom() = MlpConfig({8});
  c.mutable_loss()->set_kind(config::MultiTaskLoss::UWL);
  Esmm model(c, schema);
  model.train();
  torch::manual_seed(7);
  ModelInput in = RandomInput(schema, 16, /*requires_grad=*/true);
  torch::Tensor labels = MtlLabels(16);
  labels.select(1, 0).fill_(1);  // every row clicked and some purchased: both losses well above 0.5
  model.Loss(model.forward(in), labels).backward();
  ExpectGradientsEverywhere(model, in);
}

TEST(EsmmTest, RejectsGradNormWithoutBottomAndOtherLabelCounts) {
  data::FeatureSchema schema = MtlSchema();
  config::Esmm c;
  c.mutable_loss()->set_kind(config::MultiTaskLoss::GRADNORM);
  EXPECT_THROW(Esmm(c, schema), ConfigError);
  *c.mutable_bottom() = MlpConfig({8});
  EXPECT_NO_THROW(Esmm(c, schema));
  schema.label_columns = {"click", "purchase", "stay"};
  EXPECT_THROW(Esmm(config::Esmm(), schema), ConfigError);
}

// ---------------------------------------------------------------------------------------------
// MMoE

TEST(MmoeTest, ForwardMatchesHandComposition) {
  const data::FeatureSchema schema = MtlSchema();
  config::Mmoe c;
  c.set_num_experts(3);
  *c.mutable_expert() = MlpConfig({6, 5});
  *c.add_towers() = MlpConfig({4});
  Mmoe model(c, schema);
  SetDeterministicParameters(model, 19);
  model.eval();
  ModelInput in = RandomInput(schema, 8);
  torch::Tensor y = model.forward(in);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{8, 2}));

  torch::Tensor x = FlatByHand(in);
  std::vector<torch::Tensor> experts;
  for (int64_t e = 0; e < 3; ++e) experts.push_back(ExpertByHand(model, "experts.", e, model.experts()->options(), x));
  for (int64_t t = 0; t < 2; ++t) {
    torch::Tensor mixed = MixByHand(GateByHand(model, "gates.", t, 3, x), experts);
    const std::string tower = "towers.tower" + std::to_string(t) + ".";
    torch::Tensor expected = MlpByHand(model, tower, TowerOpts(model.towers(), static_cast<size_t>(t)), mixed).squeeze(1);
    EXPECT_TRUE(torch::allclose(y.select(1, t), expected, 1e-4, 1e-5)) << "task " << t << y << expected;
  }
}

TEST(MmoeTest, DefaultsAreTheCensusExample) {
  const data::FeatureSchema schema = MtlSchema();
  Mmoe model(config::Mmoe(), schema);
  EXPECT_EQ(model.experts()->num_experts(), 8);
  EXPECT_EQ(model.experts()->options().dims, (std::vector<int64_t>{16}));
  EXPECT_EQ(model.gates()->num_gates(), 2);
  EXPECT_EQ(TowerOpts(model.towers(), 0).dims, (std::vector<int64_t>{8}));
  EXPECT_EQ(model.SharedLayerWeights()[0].sizes(), (std::vector<int64_t>{8 * 16, 18}));
}

TEST(MmoeTest, GradientsReachEveryParameterAndEmbedding) {
  const data::FeatureSchema schema = MtlSchema();
  config::Mmoe c;
  c.set_num_experts(3);
  *c.mutable_expert() = MlpConfig({6, 5}, config::RELU, 0.1f);
  c.mutable_loss()->set_kind(config::MultiTaskLoss::GRADNORM);
  Mmoe model(c, schema);
  model.train();
  torch::manual_seed(8);
  ModelInput in = RandomInput(schema, 32, /*requires_grad=*/true);
  model.Loss(model.forward(in), MtlLabels(32)).backward();
  ExpectGradientsEverywhere(model, in);
}

// ---------------------------------------------------------------------------------------------
// PLE

// Two levels, 2 task-specific experts per task and 1 shared expert per level, T = 2, all by hand.
TEST(PleTest, TwoLevelsMatchHandComposition) {
  const data::FeatureSchema schema = MtlSchema();
  config::Ple c;
  c.set_num_layers(2);
  c.set_num_experts(2);
  c.set_num_shared_experts(1);
  *c.mutable_expert() = MlpConfig({5});
  Ple model(c, schema);
  ASSERT_EQ(model.num_levels(), 2u);
  SetDeterministicParameters(model, 23);
  model.eval();
  ModelInput in = RandomInput(schema, 6);
  torch::Tensor y = model.forward(in);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{6, 2}));

  const MlpOptions& eo = model.level(0)->specific(0)->options();
  // Level inputs: task 0, task 1, shared.
  std::vector<torch::Tensor> x(3, FlatByHand(in));
  for (int level = 0; level < 2; ++level) {
    const std::string lp = "level" + std::to_string(level) + ".";
    std::vector<std::vector<torch::Tensor>> specific(2);
    for (int t = 0; t < 2; ++t)
      for (int64_t e = 0; e < 2; ++e) specific[t].push_back(ExpertByHand(model, lp + "specific" + std::to_string(t) + ".", e, eo, x[t]));
    torch::Tensor shared = ExpertByHand(model, lp + "shared.", 0, eo, x[2]);
    std::vector<torch::Tensor> next(3);
    for (int t = 0; t < 2; ++t) {
      next[t] = MixByHand(GateByHand(model, lp + "gate" + std::to_string(t) + ".", 0, 3, x[t]), {specific[t][0], specific[t][1], shared});
    }
    if (level == 0) {
      next[2] = MixByHand(GateByHand(model, lp + "shared_gate.", 0, 5, x[2]),
                          {specific[0][0], specific[0][1], specific[1][0], specific[1][1], shared});
    }
    x = next;
  }
  EXPECT_TRUE(model.level(1)->shared_gate().is_empty());  // the last level has no shared gate
  for (int64_t t = 0; t < 2; ++t) {
    const std::string tower = "towers.tower" + std::to_string(t) + ".";
    torch::Tensor expected = MlpByHand(model, tower, TowerOpts(model.towers(), static_cast<size_t>(t)), x[t]).squeeze(1);
    EXPECT_TRUE(torch::allclose(y.select(1, t), expected, 1e-4, 1e-5)) << "task " << t << y << expected;
  }
}

TEST(PleTest, GradientsReachEveryParameterAndEmbedding) {
  const data::FeatureSchema schema = MtlSchema();
  config::Ple c;
  c.set_num_layers(2);
  c.mutable_loss()->set_kind(config::MultiTaskLoss::GRADNORM);
  Ple model(c, schema);
  model.train();
  torch::manual_seed(10);
  ModelInput in = RandomInput(schema, 32, /*requires_grad=*/true);
  model.Loss(model.forward(in), MtlLabels(32)).backward();
  ExpectGradientsEverywhere(model, in);
}

TEST(PleTest, NoSharedExpertsMeansNoGradNorm) {
  const data::FeatureSchema schema = MtlSchema();
  config::Ple c;
  c.set_num_shared_experts(0);
  EXPECT_TRUE(Ple(c, schema).SharedLayerWeights().empty());
  c.mutable_loss()->set_kind(config::MultiTaskLoss::GRADNORM);
  EXPECT_THROW(Ple(c, schema), ConfigError);
}

// ---------------------------------------------------------------------------------------------
// Tasks

TEST(ResolveTasksTest, CountsTypesAndErrors) {
  EXPECT_EQ(ResolveTasks(0, {}, 2, "m").size(), 2u);
  EXPECT_EQ(ResolveTasks(3, {}, 0, "m").size(), 3u);
  EXPECT_EQ(ResolveTasks(0, {"regression", "classification"}, 2, "m"),
            (std::vector<TaskKind>{TaskKind::kRegression, TaskKind::kClassification}));
  EXPECT_THROW(ResolveTasks(3, {}, 2, "m"), ConfigError);                      // tasks != labels
  EXPECT_THROW(ResolveTasks(2, {"classification"}, 2, "m"), ConfigError);    // one type for two tasks
  EXPECT_THROW(ResolveTasks(0, {"classfication", "regression"}, 2, "m"), ConfigError);  // typo
  try {
    ResolveTasks(0, {"classification", "ranking"}, 2, "model.mmoe");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.mmoe.task_types"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace shardrec::models
