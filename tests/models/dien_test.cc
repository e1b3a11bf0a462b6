// DIEN: the attentional GRU cells and the interest extractor against their formulas, the whole
// model against an independent composition (LibTorch's own nn::GRU for the extractor, the cell
// formulas and the MLP written out), the auxiliary loss by hand, padding invariance, gradients,
// config errors, and training on generated behaviour data through the real Trainer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/process_tuning.h"
#include "config/config_loader.h"
#include "models/dien.h"
#include "models/interest_gru.h"
#include "models/model_test_util.h"
#include "shardrec/config.pb.h"
#include "test_util.h"
#include "train/trainer.h"

namespace shardrec::models {
namespace {

using testing::MakeSchema;
using testing::MlpByHand;
using testing::Param;
using testing::SetDeterministicParameters;

// ---------------------------------------------------------------------------------------------
// Formulas written out

// One attentional GRU step from the paper's formulas, on [B, .] rows. Gate blocks of W, U, b are
// [u; r; h~] (AGRU: [r; h~]); x W means x W_g^T in LibTorch's [out, in] layout.
torch::Tensor CellByFormula(AttentionalGruKind kind, const torch::Tensor& W, const torch::Tensor& U,
                            const torch::Tensor& b, const torch::Tensor& x, const torch::Tensor& h,
                            const torch::Tensor& a) {
  const int64_t H = h.size(1);
  auto block = [&](const torch::Tensor& m, int g) { return m.slice(0, g * H, (g + 1) * H); };
  if (kind == AttentionalGruKind::kAgru) {
    torch::Tensor r = torch::sigmoid(x.matmul(block(W, 0).t()) + h.matmul(block(U, 0).t()) + block(b, 0));
    torch::Tensor cand = torch::tanh(x.matmul(block(W, 1).t()) + r * h.matmul(block(U, 1).t()) + block(b, 1));
    return (1 - a) * h + a * cand;
  }
  torch::Tensor in = kind == AttentionalGruKind::kAigru ? a * x : x;
  torch::Tensor u = torch::sigmoid(in.matmul(block(W, 0).t()) + h.matmul(block(U, 0).t()) + block(b, 0));
  torch::Tensor r = torch::sigmoid(in.matmul(block(W, 1).t()) + h.matmul(block(U, 1).t()) + block(b, 1));
  torch::Tensor cand = torch::tanh(in.matmul(block(W, 2).t()) + r * h.matmul(block(U, 2).t()) + block(b, 2));
  torch::Tensor gate = kind == AttentionalGruKind::kAugru ? a * u : u;
  return (1 - gate) * h + gate * cand;
}

// LibTorch's own GRU with the extractor's weights, run on the real steps only ([n, D] -> [n, H]).
torch::Tensor ReferenceGru(const MaskedGRUImpl& extractor, const torch::Tensor& seq) {
  torch::NoGradGuard no_grad;
  const int64_t D = extractor.weight_ih.size(1), H = extractor.hidden_dim();
  torch::nn::GRU gru(torch::nn::GRUOptions(D, H).batch_first(true));
  gru->named_parameters()["weight_ih_l0"].copy_(extractor.weight_ih);
  gru->named_parameters()["weight_hh_l0"].copy_(extractor.weight_hh);
  gru->named_parameters()["bias_ih_l0"].copy_(extractor.bias_ih);
  gru->named_parameters()["bias_hh_l0"].copy_(extractor.bias_hh);
  return std::get<0>(gru->forward(seq.unsqueeze(0))).squeeze(0);
}

// The evolution layer for one row by hand: attention softmax over the n real interests [n, H],
// then the cell from a zero state. Returns [H].
torch::Tensor EvolutionByHand(const InterestEvolutionImpl& evolution, const torch::Tensor& interests,
                              const torch::Tensor& target) {
  torch::NoGradGuard no_grad;
  const int64_t H = evolution.cell->hidden_dim();
  torch::Tensor h = torch::zeros({1, H});
  if (interests.size(0) == 0) return h.squeeze(0);
  torch::Tensor scores = (interests.matmul(evolution.attention_weight) * target.unsqueeze(0)).sum(1);
  torch::Tensor a = torch::exp(scores - scores.max()) / torch::exp(scores - scores.max()).sum();
  const AttentionalGRUCellImpl& cell = *evolution.cell;
  for (int64_t t = 0; t < interests.size(0); ++t) {
    h = CellByFormula(cell.kind(), cell.weight_ih, cell.weight_hh, cell.bias, interests[t].unsqueeze(0), h,
                      a[t].reshape({1, 1}));
  }
  return h.squeeze(0);
}

// ---------------------------------------------------------------------------------------------
// Inputs

// Right-aligned padded sequence of the given lengths: [B, L, D] N(0, 1) at real steps, zero at
// padding (unless `padding_noise`, which fills the padding with N(0, 1) too).
FeatureInput PaddedSequence(const std::vector<int64_t>& lengths, int64_t L, int64_t D, bool padding_noise = false) {
  const int64_t B = static_cast<int64_t>(lengths.size());
  FeatureInput in;
  in.lengths = torch::tensor(lengths, torch::kLong);
  in.mask = torch::arange(L).unsqueeze(0).ge(L - in.lengths.unsqueeze(1));  // [B, L]
  torch::Tensor values = torch::randn({B, L, D});
  in.emb = padding_noise ? values : values * in.mask.unsqueeze(2).to(torch::kFloat);
  return in;
}

// `extra` padded steps in front of a sequence.
FeatureInput PrependPadding(const FeatureInput& in, int64_t extra) {
  FeatureInput out;
  const int64_t B = in.emb.size(0), D = in.emb.size(2);
  out.emb = torch::cat({torch::zeros({B, extra, D}), in.emb}, 1);
  out.mask = torch::cat({torch::zeros({B, extra}, torch::kBool), in.mask}, 1);
  out.lengths = in.lengths;
  return out;
}

// Schema order: user_id, d0 (dense), item_id, cate_id, hist_item, hist_cate, neg_item, neg_cate.
enum Slot { kUser = 0, kDense = 1, kItem = 2, kCate = 3, kHistItem = 4, kHistCate = 5, kNegItem = 6, kNegCate = 7 };

data::FeatureSchema BehaviourSchema(int dim, int max_len) {
  auto seq = [&](const char* name) {
    data::FeatureSpec s = testing::Sequence(name, dim, data::Pooling::kConcat);
    s.max_len = max_len;
    return s;
  };
  return MakeSchema({testing::Sparse("user_id", dim), testing::Dense("d0"), testing::Sparse("item_id", dim),
                     testing::Sparse("cate_id", dim), seq("hist_item"), seq("hist_cate"), seq("neg_item"),
                     seq("neg_cate")});
}

// Random behaviour inputs; every sequence feature gets the same lengths (negatives follow the
// history).
ModelInput BehaviourInput(const data::FeatureSchema& schema, const std::vector<int64_t>& lengths, int64_t L,
                          bool padding_noise = false) {
  const int64_t B = static_cast<int64_t>(lengths.size());
  ModelInput in;
  in.schema = &schema;
  in.dense = torch::rand({B, 1});
  in.features.resize(schema.features.size());
  for (size_t i = 0; i < schema.features.size(); ++i) {
    const data::FeatureSpec& f = schema.features[i];
    if (f.kind == data::FeatureKind::kSparse) in.features[i].emb = torch::randn({B, f.dim});
    if (f.kind == data::FeatureKind::kSequence) in.features[i] = PaddedSequence(lengths, L, f.dim, padding_noise);
  }
  return in;
}

config::Dien TwoBehaviourConfig(config::Dien::GruType type = config::Dien::AUGRU) {
  config::Dien c;
  for (const char* n : {"hist_item", "hist_cate"}) c.add_history_features(n);
  for (const char* n : {"item_id", "cate_id"}) c.add_target_features(n);
  for (const char* n : {"neg_item", "neg_cate"}) c.add_neg_history_features(n);
  c.set_gru_type(type);
  c.mutable_mlp()->add_dims(8);
  c.mutable_mlp()->add_dims(4);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Layers

class CellTest : public ::testing::TestWithParam<AttentionalGruKind> {};

TEST_P(CellTest, OneStepMatchesFormula) {
  AttentionalGRUCell cell(GetParam(), /*input_dim=*/3, /*hidden_dim=*/5);
  SetDeterministicParameters(*cell, 31);
  torch::manual_seed(32);
  torch::Tensor x = torch::randn({6, 3}), h = torch::randn({6, 5}), a = torch::rand({6, 1});
  a[0] = 0;  // no attention: AUGRU and AGRU keep h
  torch::Tensor got = cell->forward(x, h, a);
  torch::Tensor want = CellByFormula(GetParam(), cell->weight_ih, cell->weight_hh, cell->bias, x, h, a);
  EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6)) << got << want;
  if (GetParam() != AttentionalGruKind::kAigru) EXPECT_TRUE(torch::equal(got[0], h[0]));
  EXPECT_EQ(cell->weight_ih.size(0), (GetParam() == AttentionalGruKind::kAgru ? 2 : 3) * 5);
}

INSTANTIATE_TEST_SUITE_P(Kinds, CellTest,
                         ::testing::Values(AttentionalGruKind::kAugru, AttentionalGruKind::kAigru,
                                           AttentionalGruKind::kAgru));

TEST(MaskedGruTest, MatchesLibTorchGruOnTheRealSteps) {
  MaskedGRU gru(4, 6);
  torch::manual_seed(5);
  const std::vector<int64_t> lengths = {5, 3, 1, 0};
  FeatureInput seq = PaddedSequence(lengths, 5, 4, /*padding_noise=*/true);
  torch::Tensor states = gru->forward(seq.emb, seq.mask);
  ASSERT_EQ(states.sizes(), (std::vector<int64_t>{4, 5, 6}));
  for (int64_t r = 0; r < 4; ++r) {
    const int64_t n = lengths[r], pad = 5 - n;
    // Zero before the first real step, then LibTorch's GRU over the real steps only.
    EXPECT_TRUE(torch::equal(states[r].slice(0, 0, pad), torch::zeros({pad, 6}))) << r;
    if (n > 0) {
      torch::Tensor want = ReferenceGru(*gru, seq.emb[r].slice(0, pad, 5));
      EXPECT_TRUE(torch::allclose(states[r].slice(0, pad, 5), want, 1e-5, 1e-6)) << r;
    }
  }
}

TEST(InterestEvolutionTest, MatchesHandLoopPerRow) {
  for (auto kind : {AttentionalGruKind::kAugru, AttentionalGruKind::kAigru, AttentionalGruKind::kAgru}) {
    InterestEvolution evolution(kind, /*interest_dim=*/4, /*target_dim=*/3);
    SetDeterministicParameters(*evolution, 41);
    torch::manual_seed(42);
    const std::vector<int64_t> lengths = {4, 2, 0};
    FeatureInput interests = PaddedSequence(lengths, 4, 4, /*padding_noise=*/true);
    torch::Tensor target = torch::randn({3, 3});
    torch::Tensor got = evolution->forward(interests.emb, interests.mask, target);
    torch::Tensor attention = evolution->Attention(interests.emb, interests.mask, target);
    for (int64_t r = 0; r < 3; ++r) {
      torch::Tensor real = interests.emb[r].slice(0, 4 - lengths[r], 4);
      torch::Tensor want = EvolutionByHand(*evolution, real, target[r]);
      EXPECT_TRUE(torch::allclose(got[r], want, 1e-5, 1e-6)) << static_cast<int>(kind) << " row " << r;
      EXPECT_NEAR(attention[r].sum().item<double>(), lengths[r] > 0 ? 1.0 : 0.0, 1e-6);
      EXPECT_EQ(attention[r].slice(0, 0, 4 - lengths[r]).abs().sum().item<double>(), 0.0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The model

TEST(DienTest, ForwardMatchesIndependentComposition) {
  for (auto type : {config::Dien::AUGRU, config::Dien::AIGRU, config::Dien::AGRU}) {
    const data::FeatureSchema schema = BehaviourSchema(4, 5);
    config::Dien c = TwoBehaviourConfig(type);
    c.add_interest_units(6);  // hidden 6 != dim 4 for both behaviours
    DIEN model(c, schema);
    SetDeterministicParameters(model, 51);
    model.eval();
    torch::manual_seed(52);
    const std::vector<int64_t> lengths = {5, 3, 1, 0};
    ModelInput in = BehaviourInput(schema, lengths, 5);
    torch::Tensor y = model.forward(in);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{4}));
    EXPECT_FALSE(model.last_aux_loss().defined());

    std::vector<torch::Tensor> rows;
    for (int64_t r = 0; r < 4; ++r) {
      std::vector<torch::Tensor> parts;
      const int64_t pad = 5 - lengths[r];
      for (size_t k = 0; k < 2; ++k) {
        const DIEN::Behaviour& b = model.behaviours()[k];
        torch::Tensor seq = in.features[b.history].emb[r].slice(0, pad, 5);
        torch::Tensor interests = lengths[r] > 0 ? ReferenceGru(*b.extractor, seq) : torch::zeros({0, 6});
        parts.push_back(EvolutionByHand(*b.evolution, interests, in.features[b.target].emb[r]));
      }
      parts.push_back(in.features[kItem].emb[r]);
      parts.push_back(in.features[kCate].emb[r]);
      parts.push_back(in.features[kUser].emb[r]);  // default features: every flat non-target one
      parts.push_back(in.dense[r]);
      rows.push_back(torch::cat(parts));
    }
    ASSERT_EQ(model.mlp()->options().activation, ActivationKind::kDice);
    torch::Tensor want = MlpByHand(model, "mlp.", model.mlp()->options(), torch::stack(rows)).squeeze(1);
    EXPECT_TRUE(torch::allclose(y.detach(), want, 1e-4, 1e-5)) << type << "\n" << y << want;
  }
}

TEST(DienTest, AuxiliaryLossMatchesHandComputation) {
  const data::FeatureSchema schema = BehaviourSchema(3, 4);
  config::Dien c;
  c.add_history_features("hist_item");
  c.add_target_features("item_id");
  c.add_neg_history_features("neg_item");
  c.set_alpha(0.3f);
  c.mutable_mlp()->add_dims(4);
  DIEN model(c, schema);
  SetDeterministicParameters(model, 61);
  torch::manual_seed(62);
  const std::vector<int64_t> lengths = {4, 2, 1};  // 3 + 1 + 0 valid pairs
  ModelInput in = BehaviourInput(schema, lengths, 4);
  model.train();
  torch::Tensor y = model.forward(in);
  ASSERT_TRUE(model.last_aux_loss().defined());

  const DIEN::Behaviour& b = model.behaviours()[0];
  double pos = 0, neg = 0;
  int pairs = 0;
  for (int64_t r = 0; r < 3; ++r) {
    const int64_t pad = 4 - lengths[r];
    if (lengths[r] == 0) continue;
    torch::Tensor h = ReferenceGru(*b.extractor, in.features[kHistItem].emb[r].slice(0, pad, 4));
    for (int64_t t = 0; t + 1 < lengths[r]; ++t) {
      const double lp = (h[t] * in.features[kHistItem].emb[r][pad + t + 1]).sum().item<double>();
      const double ln = (h[t] * in.features[kNegItem].emb[r][pad + t + 1]).sum().item<double>();
      pos += -std::log(1 / (1 + std::exp(-lp)));
      neg += -std::log(1 - 1 / (1 + std::exp(-ln)));
      ++pairs;
    }
  }
  ASSERT_EQ(pairs, 4);
  const double want = pos / pairs + neg / pairs;
  EXPECT_NEAR(model.last_aux_loss().item<double>(), want, 1e-5);

  // Training loss = mean BCE + alpha * aux; evaluation forwards drop the auxiliary term.
  torch::Tensor labels = torch::tensor({1.f, 0.f, 1.f}).unsqueeze(1);
  const double bce = torch::binary_cross_entropy_with_logits(y, labels.squeeze(1)).item<double>();
  EXPECT_NEAR(model.Loss(y, labels).item<double>(), bce + 0.3 * want, 1e-5);
  model.eval();
  torch::Tensor y_eval = model.forward(in);
  EXPECT_FALSE(model.last_aux_loss().defined());
  EXPECT_NEAR(model.Loss(y_eval, labels).item<double>(),
              torch::binary_cross_entropy_with_logits(y_eval, labels.squeeze(1)).item<double>(), 1e-6);
}

// Extra padding in front, garbage in padded positions and the company of other rows change
// nothing: outputs (train and eval mode) and the auxiliary loss.
TEST(DienTest, PaddingInvariance) {
  for (auto type : {config::Dien::AUGRU, config::Dien::AIGRU, config::Dien::AGRU}) {
    const data::FeatureSchema schema = BehaviourSchema(4, 6);
    DIEN model(TwoBehaviourConfig(type), schema);
    SetDeterministicParameters(model, 71);
    torch::manual_seed(72);
    const std::vector<int64_t> lengths = {6, 2, 4, 1, 0, 3};
    ModelInput in = BehaviourInput(schema, lengths, 6);

    ModelInput padded = in;  // 3 more padded steps in front of every sequence
    ModelInput noisy = in;   // the padded steps hold random vectors instead of zeros
    for (int f : {kHistItem, kHistCate, kNegItem, kNegCate}) {
      padded.features[f] = PrependPadding(in.features[f], 3);
      noisy.features[f].emb = torch::where(in.features[f].mask.unsqueeze(2), in.features[f].emb,
                                           torch::randn_like(in.features[f].emb));
    }
    for (bool training : {true, false}) {
      model.train(training);
      torch::Tensor y = model.forward(in);
      torch::Tensor aux = model.last_aux_loss();
      for (ModelInput* other : {&padded, &noisy}) {
        torch::Tensor y2 = model.forward(*other);
        EXPECT_TRUE(torch::allclose(y, y2, 1e-5, 1e-6)) << type << " training " << training << "\n" << y << y2;
        if (training) EXPECT_NEAR(aux.item<double>(), model.last_aux_loss().item<double>(), 1e-6);
      }
    }
    // Eval mode: each row alone (its own, shorter padding) gives its row of the batch.
    model.eval();
    torch::Tensor y = model.forward(padded);
    for (int64_t r = 0; r < static_cast<int64_t>(lengths.size()); ++r) {
      ModelInput one = padded;
      one.dense = padded.dense.slice(0, r, r + 1);
      for (size_t f = 0; f < one.features.size(); ++f) {
        FeatureInput& fi = one.features[f];
        if (fi.emb.defined()) fi.emb = fi.emb.slice(0, r, r + 1);
        if (fi.mask.defined()) fi.mask = fi.mask.slice(0, r, r + 1);
        if (fi.lengths.defined()) fi.lengths = fi.lengths.slice(0, r, r + 1);
      }
      EXPECT_NEAR(model.forward(one).item<double>(), y[r].item<double>(), 1e-5) << type << " row " << r;
    }
  }
}

TEST(DienTest, GradientsReachEveryParameterAndEmbedding) {
  for (auto type : {config::Dien::AUGRU, config::Dien::AIGRU, config::Dien::AGRU}) {
    for (int units : {0, 6}) {
      const data::FeatureSchema schema = BehaviourSchema(4, 5);
      config::Dien c = TwoBehaviourConfig(type);
      if (units > 0) c.add_interest_units(units);
      DIEN model(c, schema);
      model.train();
      torch::manual_seed(81);
      ModelInput in = BehaviourInput(schema, {5, 3, 1, 0, 4, 2, 5, 2}, 5);
      for (auto& f : in.features)
        if (f.emb.defined()) f.emb.set_requires_grad(true);
      torch::Tensor labels = torch::randint(0, 2, {8, 1}).to(torch::kFloat);
      model.Loss(model.forward(in), labels).backward();
      for (const auto& p : model.named_parameters()) {
        ASSERT_TRUE(p.value().grad().defined()) << type << " " << units << " " << p.key();
        EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << type << " " << units << " " << p.key();
      }
      EXPECT_EQ(model.named_parameters().contains("aux_projection0.weight"), units > 0);
      for (int f : {kUser, kItem, kCate, kHistItem, kHistCate, kNegItem, kNegCate}) {
        ASSERT_TRUE(in.features[f].emb.grad().defined()) << schema.features[f].name;
        EXPECT_GT(in.features[f].emb.grad().abs().sum().item<double>(), 0) << schema.features[f].name;
      }
    }
  }
}

// Label = "the target's category occurs in the history", on fixed random category embeddings;
// only the dense parameters learn. Evaluated on fresh rows.
TEST(DienTest, LearnsWhetherTheTargetOccursInTheHistory) {
  torch::manual_seed(91);
  const int64_t cates = 20, dim = 8, L = 10;
  torch::Tensor table = torch::randn({cates, dim});
  const data::FeatureSchema schema = BehaviourSchema(dim, L);
  auto batch = [&](int64_t B, torch::Tensor* labels) {
    torch::Tensor lengths = torch::randint(1, L + 1, {B});
    torch::Tensor ids = torch::randint(0, cates, {B, L});
    torch::Tensor mask = torch::arange(L).unsqueeze(0).ge(L - lengths.unsqueeze(1));
    torch::Tensor target = torch::where(torch::rand({B}) < 0.5, ids.select(1, L - 1), torch::randint(0, cates, {B}));
    *labels = (ids.eq(target.unsqueeze(1)) & mask).any(1).to(torch::kFloat).unsqueeze(1);
    ModelInput in = BehaviourInput(schema, std::vector<int64_t>(lengths.data_ptr<int64_t>(), lengths.data_ptr<int64_t>() + B), L);
    in.features[kHistCate].emb = table.index({ids}) * mask.unsqueeze(2).to(torch::kFloat);
    in.features[kCate].emb = table.index({target});
    return in;
  };
  config::Dien c;
  c.add_history_features("hist_cate");
  c.add_target_features("cate_id");
  c.add_features("d0");
  c.set_alpha(0);
  c.mutable_mlp()->add_dims(32);
  c.mutable_mlp()->add_dims(16);
  DIEN model(c, schema);
  torch::optim::Adam adam(model.parameters(), torch::optim::AdamOptions(1e-2));
  model.train();
  for (int step = 0; step < 200; ++step) {
    torch::Tensor labels;
    ModelInput in = batch(256, &labels);
    adam.zero_grad();
    model.Loss(model.forward(in), labels).backward();
    adam.step();
  }
  model.eval();
  torch::NoGradGuard no_grad;
  torch::Tensor labels;
  ModelInput in = batch(2000, &labels);
  torch::Tensor p = torch::sigmoid(model.forward(in));
  const double accuracy = (p.gt(0.5).to(torch::kFloat) == labels.squeeze(1)).to(torch::kFloat).mean().item<double>();
  // Always answering the majority class scores ~0.64.
  EXPECT_GT(accuracy, 0.9) << "positive rate " << labels.mean().item<double>();
}

// ---------------------------------------------------------------------------------------------
// Config

// A DIEN job on generated behaviour data. `model_extra` goes inside dien { }. A small vocabulary
// (500 items in 10 categories) and the last 20 clicks keep the signal learnable in a few seconds.
std::string SeqJob(int rows, const std::string& model_extra = "", int epochs = 2) {
  std::ostringstream s;
  s << "name: \"dien\"\n"
    << "data { synthetic { kind: SEQ rows: " << rows << " seed: 5 vocab_size: 500 } shuffle_buffer: 20000 }\n"
    << "embedding { dim: 8 optimizer { kind: ADAM lr: 0.005 } }\n"
    << "features { name: \"user_id\" }\n"
    << "features { name: \"item_id\" }\n"
    << "features { name: \"cate_id\" }\n";
  for (const char* history : {"hist_item_id", "hist_cate_id", "neg_hist_item_id", "neg_hist_cate_id"}) {
    const std::string h = history;
    s << "features { name: \"" << h << "\" type: SEQUENCE pooling: CONCAT max_len: 20 shared_with: \""
      << (h.find("item") != std::string::npos ? "item_id" : "cate_id") << "\" }\n";
  }
  s << "model { dien {\n"
    << "  history_features: [\"hist_item_id\", \"hist_cate_id\"]\n"
    << "  target_features: [\"item_id\", \"cate_id\"]\n"
    << "  neg_history_features: [\"neg_hist_item_id\", \"neg_hist_cate_id\"]\n"
    << "  mlp { dims: [64, 32] }\n"
    << "  " << model_extra << "\n"
    << "} }\n"
    << "trainer { batch_size: 256 epochs: " << epochs
    << " progress: QUIET num_threads: 2 optimizer { lr: 0.003 } }\n"
    << "ps { num_shards: 2 memory_only: true }\n";
  return s.str();
}

std::string ErrorOf(const std::string& text) {
  try {
    config::ParseJob(text, "job.pbtxt");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(DienConfigTest, GoodJobLoads) {
  config::Job job = config::ParseJob(SeqJob(100, "gru_type: AGRU interest_units: [6, 4] alpha: 0.5"), "job.pbtxt");
  EXPECT_EQ(job.model().dien().gru_type(), config::Dien::AGRU);
  EXPECT_FLOAT_EQ(config::ParseJob(SeqJob(100), "job.pbtxt").model().dien().alpha(), 0.2f);
}

TEST(DienConfigTest, BadValuesNameLineAndField) {
  struct Case {
    std::string extra, field;
  };
  const std::vector<Case> cases = {
      {"alpha: -0.1", "model.dien.alpha"},
      {"interest_units: [8, 0]", "model.dien.interest_units[1]"},
      {"interest_units: [8, 8, 8]", "model.dien.interest_units"},
      {"gru_type: LSTM", "model.dien.gru_type"},
      {"mlp { dims: 0 }", "model.dien.mlp"},
      {"features: [\"hist_item_id\"]", "model.dien.features[0]"},
      {"features: [\"nope\"]", "model.dien.features[0]"},
  };
  for (const Case& c : cases) {
    const std::string e = ErrorOf(SeqJob(100, c.extra));
    EXPECT_NE(e.find("job.pbtxt:"), std::string::npos) << c.extra << ": " << e;
    EXPECT_NE(e.find(c.field), std::string::npos) << c.extra << ": " << e;
  }
  auto replace = [](std::string text, const std::string& from, const std::string& to) {
    const size_t p = text.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    return text.replace(p, from.size(), to);
  };
  const std::string job = SeqJob(100);
  const std::vector<Case> edits = {
      {"target_features: [\"item_id\", \"cate_id\"]", "model.dien.target_features"},
      {"neg_history_features: [\"neg_hist_item_id\", \"neg_hist_cate_id\"]", "model.dien.neg_history_features"},
      {"history_features: [\"hist_item_id\", \"hist_cate_id\"]", "model.dien.history_features"},
  };
  for (const Case& c : edits) {
    const std::string e = ErrorOf(replace(job, c.extra, ""));
    EXPECT_NE(e.find(c.field), std::string::npos) << c.extra << ": " << e;
  }
  // A history that is not a concat sequence; a target that is a sequence; a negative of another length.
  EXPECT_NE(ErrorOf(replace(job, "\"hist_cate_id\"]", "\"user_id\"]")).find("model.dien.history_features[1]"),
            std::string::npos);
  EXPECT_NE(ErrorOf(replace(job, "\"cate_id\"]", "\"hist_cate_id\"]")).find("model.dien.target_features[1]"),
            std::string::npos);
  const std::string short_neg = replace(job, "name: \"neg_hist_cate_id\" type: SEQUENCE pooling: CONCAT max_len: 20",
                                        "name: \"neg_hist_cate_id\" type: SEQUENCE pooling: CONCAT max_len: 10");
  EXPECT_NE(ErrorOf(short_neg).find("model.dien.neg_history_features[1]"), std::string::npos) << ErrorOf(short_neg);
  // No negatives is fine without the auxiliary loss.
  EXPECT_EQ(ErrorOf(replace(job, "neg_history_features: [\"neg_hist_item_id\", \"neg_hist_cate_id\"]", "alpha: 0")), "");
}

TEST(DienConfigTest, ModelRejectsWhatValidationWouldWithFieldPath) {
  const data::FeatureSchema schema = BehaviourSchema(4, 5);
  auto error = [&](const config::Dien& c) -> std::string {
    try {
      DIEN model(c, schema);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  config::Dien c = TwoBehaviourConfig();
  c.set_alpha(-1);
  EXPECT_NE(error(c).find("model.dien.alpha"), std::string::npos);
  c = TwoBehaviourConfig();
  c.set_target_features(1, "hist_cate");
  EXPECT_NE(error(c).find("model.dien.target_features[1]"), std::string::npos) << error(c);
  c = TwoBehaviourConfig();
  c.clear_neg_history_features();
  EXPECT_NE(error(c).find("model.dien.neg_history_features"), std::string::npos);
  c.set_alpha(0);
  EXPECT_EQ(error(c), "");
  c = TwoBehaviourConfig();
  c.add_interest_units(4);
  c.add_interest_units(-2);
  EXPECT_NE(error(c).find("model.dien.interest_units[1]"), std::string::npos) << error(c);
}

// ---------------------------------------------------------------------------------------------
// Training through the real Trainer

// Measured: validation AUC 0.653 after epoch 1 and 0.664 after epoch 2 (test 0.66); the same
// model untrained scores 0.51, and the history statistic "share of the target's category among
// the clicks" alone 0.70. Hidden size 16 learns this data faster than the reference's 8 (0.60).
train::TrainReport TrainOnGeneratedSeq(const std::string& job_text, const std::vector<std::string>& sets = {}) {
  TuneMalloc();  // as the shardrec binary runs: no mmap/munmap of the activations every step
  const std::string dir = shardrec::testing::TempDir("dien-train");
  const auto start = std::chrono::steady_clock::now();
  train::TrainReport r = train::Trainer(config::ParseJob(job_text, "inline.pbtxt", sets), dir).Run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "dien: validation auc " << r.validation.at("auc") << ", test auc " << r.test.at("auc") << ", "
            << r.train_samples_per_sec << " samples/s, " << seconds << " s\n";
  std::filesystem::remove_all(dir);
  return r;
}

TEST(DienTrainingTest, LearnsGeneratedBehaviourData) {
  train::TrainReport r = TrainOnGeneratedSeq(SeqJob(40000, "interest_units: 16"));
  ASSERT_EQ(r.epochs.size(), 2u);
  EXPECT_GT(r.validation.at("auc"), 0.62);
  EXPECT_GT(r.test.at("auc"), 0.62);
}

// The auxiliary term enters the loss the trainer minimises: at the start each behaviour's term is
// ~2 ln 2 (embeddings near zero), so alpha 0.2 adds ~0.2 * 2 * 2 ln 2 to the first steps' loss.
TEST(DienTrainingTest, AuxWeightChangesTrainingLoss) {
  auto first_steps_loss = [](const std::string& alpha) {
    return TrainOnGeneratedSeq(SeqJob(4000, "alpha: " + alpha, 1), {"trainer.max_steps_per_epoch=4"})
        .epochs.at(0)
        .train_loss;
  };
  const double without = first_steps_loss("0"), with = first_steps_loss("0.2");
  EXPECT_NEAR(with - without, 0.2 * 2 * 2 * std::log(2.0), 0.05) << "alpha 0: " << without << ", alpha 0.2: " << with;
}

}  // namespace
}  // namespace shardrec::models
