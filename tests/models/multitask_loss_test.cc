// The multi-task losses against hand computations: weighted sum, UWL (value, gradients, one SGD
// step) and GradNorm (two steps on a toy shared layer whose per-task gradients are known in closed
// form, then inside a model).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "common/error.h"
#include "models/mmoe.h"
#include "models/model_test_util.h"
#include "models/multitask_loss.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {
namespace {

config::MultiTaskLoss LossConfig(config::MultiTaskLoss::Kind kind, std::vector<float> weights = {}) {
  config::MultiTaskLoss c;
  c.set_kind(kind);
  for (float w : weights) c.add_weights(w);
  return c;
}

TEST(MultiTaskLossTest, WeightedSum) {
  MultiTaskLoss loss(LossConfig(config::MultiTaskLoss::WEIGHTED_SUM, {0.5f, 2.f}), 2, "f");
  torch::Tensor l = torch::tensor({0.8f, 0.3f}, torch::requires_grad());
  torch::Tensor total = loss->forward(l);
  EXPECT_NEAR(total.item<double>(), 0.5 * 0.8 + 2 * 0.3, 1e-6);
  total.backward();
  EXPECT_TRUE(torch::allclose(l.grad(), torch::tensor({0.5f, 2.f})));
  EXPECT_TRUE(loss->parameters().empty());
  // Default: every weight 1.
  MultiTaskLoss plain(config::MultiTaskLoss(), 3, "f");
  EXPECT_NEAR(plain->forward(torch::tensor({1.f, 2.f, 4.f})).item<double>(), 7, 1e-6);
}

// The reference's form: sum_i 2 L_i exp(-s_i) + s_i, s_i = max(w_i, 0).
TEST(MultiTaskLossTest, UwlValueGradientsAndOneSgdStep) {
  MultiTaskLoss loss(LossConfig(config::MultiTaskLoss::UWL), 3, "f");
  ASSERT_EQ(loss->parameters().size(), 1u);
  EXPECT_TRUE(torch::equal(loss->log_variance, torch::zeros({3})));  // the reference starts at 0
  const std::vector<double> w = {0.4, -0.3, 0.0}, l = {0.7, 0.2, 1.5};
  {
    torch::NoGradGuard no_grad;
    loss->log_variance.copy_(torch::tensor({0.4f, -0.3f, 0.f}));
  }
  torch::Tensor task_losses = torch::tensor({0.7f, 0.2f, 1.5f}, torch::requires_grad());
  torch::Tensor total = loss->forward(task_losses);
  double expected = 0;
  std::vector<double> dw(3), dl(3);
  for (int i = 0; i < 3; ++i) {
    const double s = std::max(w[i], 0.0);
    expected += 2 * l[i] * std::exp(-s) + s;
    // Below 0 the clamp passes no gradient; at 0 it does (torch's clamp, so the reference's too).
    dw[i] = w[i] >= 0 ? 1 - 2 * l[i] * std::exp(-s) : 0;
    dl[i] = 2 * std::exp(-s);
  }
  EXPECT_NEAR(total.item<double>(), expected, 1e-5);
  torch::optim::SGD sgd(loss->parameters(), torch::optim::SGDOptions(0.1));
  sgd.zero_grad();
  total.backward();
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(loss->log_variance.grad()[i].item<double>(), dw[i], 1e-5) << i;
    EXPECT_NEAR(task_losses.grad()[i].item<double>(), dl[i], 1e-5) << i;
  }
  sgd.step();
  for (int i = 0; i < 3; ++i) {
    const double stepped = w[i] - 0.1 * dw[i];
    EXPECT_NEAR(loss->log_variance[i].item<double>(), stepped, 1e-5) << i;
    EXPECT_NEAR(loss->task_weights()[i].item<double>(), 2 * std::exp(-std::max(stepped, 0.0)), 1e-5) << i;
  }
}

TEST(MultiTaskLossTest, UwlWithoutClampIsKendallsForm) {
  config::MultiTaskLoss c = LossConfig(config::MultiTaskLoss::UWL);
  c.set_uwl_clamp(false);
  MultiTaskLoss loss(c, 2, "f");
  {
    torch::NoGradGuard no_grad;
    loss->log_variance.copy_(torch::tensor({-0.3f, 0.5f}));
  }
  torch::Tensor total = loss->forward(torch::tensor({0.2f, 0.9f}));
  EXPECT_NEAR(total.item<double>(), 2 * 0.2 * std::exp(0.3) - 0.3 + 2 * 0.9 * std::exp(-0.5) + 0.5, 1e-5);
  total.backward();
  EXPECT_NEAR(loss->log_variance.grad()[0].item<double>(), 1 - 2 * 0.2 * std::exp(0.3), 1e-5);
}

TEST(MultiTaskLossTest, RejectsBadConfigs) {
  EXPECT_THROW(MultiTaskLoss(LossConfig(config::MultiTaskLoss::WEIGHTED_SUM, {1.f}), 2, "f"), ConfigError);
  EXPECT_THROW(MultiTaskLoss(LossConfig(config::MultiTaskLoss::WEIGHTED_SUM, {1.f, -1.f}), 2, "f"), ConfigError);
  EXPECT_THROW(MultiTaskLoss(LossConfig(config::MultiTaskLoss::UWL, {1.f, 1.f}), 2, "f"), ConfigError);
  EXPECT_THROW(MultiTaskLoss(LossConfig(config::MultiTaskLoss::GRADNORM, {0.f, 0.f}), 2, "f"), ConfigError);
  config::MultiTaskLoss c = LossConfig(config::MultiTaskLoss::GRADNORM);
  c.set_gradnorm_alpha(-1);
  EXPECT_THROW(MultiTaskLoss(c, 2, "f"), ConfigError);
}

// A toy shared layer W and task losses L_i = c_i + <W, A_i>, so dL_i/dW = A_i and
// ||dL_i/dW|| = ||A_i|| exactly. Two training steps of GradNorm (weights, W) with SGD, by hand.
TEST(MultiTaskLossTest, GradNormMatchesHandComputationOverTwoSteps) {
  config::MultiTaskLoss c = LossConfig(config::MultiTaskLoss::GRADNORM, {1.f, 3.f});
  c.set_gradnorm_alpha(0.5);
  MultiTaskLoss loss(c, 2, "f");
  loss->train();
  // Starting weights renormalised to sum to T = 2.
  EXPECT_TRUE(torch::allclose(loss->gradnorm_weights, torch::tensor({0.5f, 1.5f})));

  torch::Tensor w_layer = torch::tensor({{0.5f, -1.f}, {2.f, 0.3f}, {0.1f, 0.4f}}).requires_grad_();
  const torch::Tensor a1 = torch::tensor({{1.f, 2.f}, {0.f, 1.f}, {1.f, 0.f}});
  const torch::Tensor a2 = torch::tensor({{0.f, 0.5f}, {1.f, 1.f}, {3.f, 0.f}});
  auto task_losses = [&] { return torch::stack({4.1 + (w_layer * a1).sum(), 1.9 + (w_layer * a2).sum()}); };
  const double n1 = std::sqrt(7.0), n2 = std::sqrt(11.25);  // ||A_1||, ||A_2||
  torch::optim::SGD sgd(std::vector<torch::Tensor>{w_layer, loss->gradnorm_weights}, torch::optim::SGDOptions(0.1));

  // Step 1: L = L(0), so every r_i = 1 and every target is mean(G).
  std::vector<double> w = {0.5, 1.5};
  torch::Tensor l0 = task_losses();
  EXPECT_NEAR(l0[0].item<double>(), 3, 1e-5);
  EXPECT_NEAR(l0[1].item<double>(), 4, 1e-5);
  sgd.zero_grad();
  torch::Tensor total = loss->forward(l0, {w_layer});
  EXPECT_NEAR(total.item<double>(), w[0] * 3 + w[1] * 4, 1e-5);  // the GradNorm term adds nothing to the value
  total.backward();
  EXPECT_TRUE(torch::allclose(w_layer.grad(), 0.5 * a1 + 1.5 * a2, 1e-5, 1e-6));  // the model trains on sum w_i L_i
  double g1 = w[0] * n1, g2 = w[1] * n2, mean = (g1 + g2) / 2;
  std::vector<double> dw = {(g1 > mean ? 1 : -1) * n1, (g2 > mean ? 1 : -1) * n2};
  EXPECT_NEAR(loss->gradnorm_weights.grad()[0].item<double>(), dw[0], 1e-4);
  EXPECT_NEAR(loss->gradnorm_weights.grad()[1].item<double>(), dw[1], 1e-4);
  EXPECT_TRUE(torch::allclose(loss->initial_losses, torch::tensor({3.f, 4.f})));
  sgd.step();

  // Step 2: the weights are renormalised to sum to 2 first; then targets follow r_i.
  for (int i = 0; i < 2; ++i) w[i] -= 0.1 * dw[i];
  const double sum = w[0] + w[1];
  for (double& x : w) x *= 2 / sum;
  torch::Tensor l1 = task_losses();
  const double r1 = l1[0].item<double>() / 3, r2 = l1[1].item<double>() / 4;  // L_i / L_i(0)
  sgd.zero_grad();
  total = loss->forward(l1, {w_layer});
  EXPECT_NEAR(loss->gradnorm_weights[0].item<double>(), w[0], 1e-5);
  EXPECT_NEAR(loss->gradnorm_weights[1].item<double>(), w[1], 1e-5);
  EXPECT_NEAR(loss->gradnorm_weights.sum().item<double>(), 2, 1e-5);
  total.backward();
  g1 = w[0] * n1;
  g2 = w[1] * n2;
  mean = (g1 + g2) / 2;
  const double target1 = mean * std::pow(r1 / ((r1 + r2) / 2), 0.5), target2 = mean * std::pow(r2 / ((r1 + r2) / 2), 0.5);
  EXPECT_NEAR(loss->gradnorm_weights.grad()[0].item<double>(), (g1 > target1 ? 1 : -1) * n1, 1e-4);
  EXPECT_NEAR(loss->gradnorm_weights.grad()[1].item<double>(), (g2 > target2 ? 1 : -1) * n2, 1e-4);
  EXPECT_TRUE(torch::allclose(w_layer.grad(), w[0] * a1 + w[1] * a2, 1e-5, 1e-5));
}

// Outside training (or without grad) GradNorm is the weighted sum and leaves the weights alone.
TEST(MultiTaskLossTest, GradNormInEvalIsTheWeightedSum) {
  MultiTaskLoss loss(LossConfig(config::MultiTaskLoss::GRADNORM, {1.f, 3.f}), 2, "f");
  loss->eval();
  torch::Tensor w_layer = torch::ones({2, 2}, torch::requires_grad());
  torch::Tensor total = loss->forward(torch::stack({w_layer.sum(), 2 * w_layer.sum()}), {w_layer});
  EXPECT_NEAR(total.item<double>(), 0.5 * 4 + 1.5 * 8, 1e-5);
  EXPECT_LT(loss->initial_losses[0].item<double>(), 0);
}

// Inside a model: the model's weights get exactly the gradient of sum_i w_i L_i, GradNorm's
// weights their own; and the per-task norms do not run the shared weight's gradient hooks (which
// distributed training uses to launch allreduces): they fire once, in backward.
TEST(MultiTaskLossTest, GradNormInsideMmoe) {
  data::FeatureSchema schema = testing::SmallSchema();
  schema.label_columns = {"click", "purchase"};
  config::Mmoe c;
  c.set_num_experts(3);
  c.mutable_loss()->set_kind(config::MultiTaskLoss::GRADNORM);
  Mmoe model(c, schema);
  model.train();
  torch::manual_seed(12);
  ModelInput in = testing::RandomInput(schema, 64);
  torch::Tensor click = torch::randint(0, 2, {64, 1}).to(torch::kFloat);
  torch::Tensor labels = torch::cat({click, click * torch::randint(0, 2, {64, 1}).to(torch::kFloat)}, 1);

  int hook_calls = 0;
  torch::Tensor shared = model.SharedLayerWeights()[0];
  shared.register_hook([&hook_calls](const torch::Tensor&) { ++hook_calls; });

  torch::Tensor outputs = model.forward(in);
  std::vector<torch::Tensor> params;
  for (const auto& p : model.named_parameters())
    if (p.key().rfind("mtl_loss.", 0) != 0) params.push_back(p.value());
  const torch::Tensor w = model.multi_task_loss()->gradnorm_weights.detach().clone();
  const auto expected = torch::autograd::grad({(w * model.TaskLosses(outputs, labels)).sum()}, params, {}, /*retain_graph=*/true);

  torch::Tensor loss = model.Loss(outputs, labels);
  EXPECT_EQ(hook_calls, 0);
  model.zero_grad();
  loss.backward();
  EXPECT_EQ(hook_calls, 1);
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::allclose(params[i].grad(), expected[i], 1e-5, 1e-6)) << i;
  const torch::Tensor gw = model.multi_task_loss()->gradnorm_weights.grad();
  ASSERT_TRUE(gw.defined());
  EXPECT_GT(gw.abs().min().item<double>(), 0);
}

}  // namespace
}  // namespace shardrec::models
