// AFM and FiBiNET and their layers (attention pooling, SENET, bilinear interaction) against
// compositions of plain LibTorch ops that walk the field pairs with explicit loops; attention
// normalisation; gradient flow; config errors with field paths; short trainings on generated CTR
// data through the real Trainer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/process_tuning.h"
#include "config/config_loader.h"
#include "models/afm.h"
#include "models/fibinet.h"
#include "models/interaction_layers.h"
#include "models/model_test_util.h"
#include "shardrec/config.pb.h"
#include "test_util.h"
#include "train/trainer.h"

namespace shardrec::models {
namespace {

using testing::ExpectGradientsEverywhere;
using testing::MlpByHand;
using testing::Param;
using testing::RandomInput;
using testing::SetDeterministicParameters;
using testing::SmallSchema;

// ---------------------------------------------------------------------------------------------
// References written with loops over fields and pairs (double precision)

// The pairs i < j in combinations order, by two nested loops.
std::vector<std::pair<int64_t, int64_t>> PairsByLoop(int64_t num_fields) {
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (int64_t i = 0; i < num_fields; ++i) {
    for (int64_t j = i + 1; j < num_fields; ++j) pairs.emplace_back(i, j);
  }
  return pairs;
}

torch::Tensor D(const torch::Tensor& t) { return t.detach().to(torch::kDouble); }

// AFM's attention over v [B, F, D] with layers (W_k, b_k), h, p: scores by loop over pairs, an
// explicit exp / sum softmax, the weighted sum, then p. Returns {out [B, 1], a [B, P]}.
std::pair<torch::Tensor, torch::Tensor> AfmPoolingByLoop(const torch::Tensor& v_in, torch::nn::Module& m,
                                                        const std::string& prefix, int layers) {
  const torch::Tensor v = D(v_in);
  const auto pairs = PairsByLoop(v.size(1));
  std::vector<torch::Tensor> scores, products;
  for (const auto& [i, j] : pairs) {
    torch::Tensor e = v.select(1, i) * v.select(1, j);  // [B, D]
    torch::Tensor x = e;
    for (int k = 0; k < layers; ++k) {
      const std::string n = prefix + "attention" + std::to_string(k);
      x = x.matmul(D(Param(m, n + ".weight")).t()) + D(Param(m, n + ".bias"));
      x = torch::where(x > 0, x, torch::zeros_like(x));
    }
    scores.push_back(x.matmul(D(Param(m, prefix + "h"))));  // [B, 1]
    products.push_back(e);
  }
  torch::Tensor s = torch::cat(scores, 1);  // [B, P]
  torch::Tensor w = torch::exp(s - std::get<0>(s.max(1, true)));
  torch::Tensor a = w / w.sum(1, true);
  torch::Tensor pooled = torch::zeros_like(products[0]);
  for (size_t k = 0; k < products.size(); ++k) pooled += a.select(1, k).unsqueeze(1) * products[k];
  return {pooled.matmul(D(Param(m, prefix + "p"))), a};
}

// SENET: per field mean over D, the two bias-free layers with ReLU, per-field scaling.
torch::Tensor SenetByLoop(const torch::Tensor& v_in, torch::nn::Module& m, const std::string& prefix) {
  const torch::Tensor v = D(v_in);
  const torch::Tensor w1 = D(Param(m, prefix + "squeeze.weight")), w2 = D(Param(m, prefix + "excite.weight"));
  const int64_t fields = v.size(1);
  std::vector<torch::Tensor> z;
  for (int64_t f = 0; f < fields; ++f) z.push_back(v.select(1, f).sum(1, true) / v.size(2));
  torch::Tensor hidden = torch::cat(z, 1).matmul(w1.t());
  hidden = torch::where(hidden > 0, hidden, torch::zeros_like(hidden));
  torch::Tensor a = hidden.matmul(w2.t());
  a = torch::where(a > 0, a, torch::zeros_like(a));
  std::vector<torch::Tensor> out;
  for (int64_t f = 0; f < fields; ++f) out.push_back(v.select(1, f) * a.select(1, f).unsqueeze(1));
  return torch::stack(out, 1);
}

// Bilinear: for each pair (i, j), (v_i W^T) * v_j with W chosen by the type. [B, P, D].
torch::Tensor BilinearByLoop(const torch::Tensor& v_in, const torch::Tensor& weight_in, BilinearType type) {
  const torch::Tensor v = D(v_in), weight = D(weight_in);
  const auto pairs = PairsByLoop(v.size(1));
  std::vector<torch::Tensor> out;
  for (size_t k = 0; k < pairs.size(); ++k) {
    const auto [i, j] = pairs[k];
    torch::Tensor w = type == BilinearType::kFieldAll    ? weight
                      : type == BilinearType::kFieldEach ? weight[i]
                                                         : weight[static_cast<int64_t>(k)];
    out.push_back(v.select(1, i).matmul(w.t()) * v.select(1, j));
  }
  return torch::stack(out, 1);
}

void ExpectClose(const torch::Tensor& actual, const torch::Tensor& expected, double rtol = 1e-4, double atol = 1e-5) {
  ASSERT_EQ(actual.sizes(), expected.sizes());
  EXPECT_TRUE(torch::allclose(D(actual), D(expected), rtol, atol))
      << "max abs diff " << (D(actual) - D(expected)).abs().max().item<double>();
}


// SmallSchema order: s0, d0, s1, h0 (mean), c0 (concat), s2, d1.
torch::Tensor Emb(const ModelInput& in, int schema_index) { return in.features[schema_index].emb; }
torch::Tensor DenseColumn(const ModelInput& in, int column) { return in.dense.select(1, column).unsqueeze(1); }

// ---------------------------------------------------------------------------------------------
// Layers

TEST(FieldPairsTest, CombinationsOrder) {
  FieldPairs p = AllFieldPairs(4);
  EXPECT_TRUE(torch::equal(p.left, torch::tensor({0, 0, 0, 1, 1, 2}, torch::kLong)));
  EXPECT_TRUE(torch::equal(p.right, torch::tensor({1, 2, 3, 2, 3, 3}, torch::kLong)));
  EXPECT_EQ(AllFieldPairs(2).size(), 1);
}

TEST(AttentionalPoolingTest, MatchesLoopOverPairs) {
  for (const std::vector<int64_t>& units : {std::vector<int64_t>{6}, std::vector<int64_t>{7, 3}}) {
    AttentionalPoolingOptions o;
    o.num_fields = 5;
    o.embed_dim = 4;
    o.attention_units = units;
    AttentionalPooling pooling(o);
    SetDeterministicParameters(*pooling, 31);
    torch::Tensor v = torch::randn({6, 5, 4});
    auto [expected, expected_a] = AfmPoolingByLoop(v, *pooling, "", static_cast<int>(units.size()));
    ExpectClose(pooling->forward(v), expected);
    ExpectClose(pooling->attention(v), expected_a);
  }
}

TEST(AttentionalPoolingTest, WeightsSumToOneOverPairsAndDifferAfterRandomInit) {
  torch::manual_seed(5);
  AttentionalPooling pooling(AttentionalPoolingOptions{6, 8, {64}, 0.0});  // default init
  torch::Tensor a = pooling->attention(torch::randn({32, 6, 8}));
  ASSERT_EQ(a.sizes(), (std::vector<int64_t>{32, 15}));
  EXPECT_TRUE(torch::allclose(a.sum(1), torch::ones({32}), 1e-5, 1e-5));
  EXPECT_TRUE((a > 0).all().item<bool>());
  // Not the reference's constant (every weight 1) nor a uniform 1/P: each row tells pairs apart.
  torch::Tensor spread = std::get<0>(a.max(1)) - std::get<0>(a.min(1));
  EXPECT_GT(spread.min().item<double>(), 1e-3) << a;
}

TEST(AttentionalPoolingTest, DropoutActsOnlyInTraining) {
  AttentionalPooling with(AttentionalPoolingOptions{4, 8, {16}, 0.5});
  AttentionalPooling without(AttentionalPoolingOptions{4, 8, {16}, 0.0});
  SetDeterministicParameters(*with, 3);
  SetDeterministicParameters(*without, 3);
  torch::Tensor v = torch::randn({64, 4, 8});
  with->eval();
  ExpectClose(with->forward(v), without->forward(v));
  with->train();
  torch::manual_seed(9);
  EXPECT_FALSE(torch::allclose(with->forward(v), without->forward(v)));
}

TEST(SenetTest, MatchesLoopOverFields) {
  for (int64_t ratio : {1, 2, 3, 10}) {
    Senet senet(7, ratio);
    EXPECT_EQ(senet->reduced_size(), std::max<int64_t>(1, 7 / ratio));
    SetDeterministicParameters(*senet, 11 + ratio);
    torch::Tensor v = torch::randn({5, 7, 3});
    ExpectClose(senet->forward(v), SenetByLoop(v, *senet, ""));
  }
}

TEST(BilinearInteractionTest, EachTypeMatchesLoopOverPairs) {
  for (BilinearType type : {BilinearType::kFieldAll, BilinearType::kFieldEach, BilinearType::kFieldInteraction}) {
    SCOPED_TRACE(BilinearTypeName(type));
    BilinearInteraction bilinear(5, 4, type);
    const std::vector<int64_t> expected_shape = type == BilinearType::kFieldAll    ? std::vector<int64_t>{4, 4}
                                                : type == BilinearType::kFieldEach ? std::vector<int64_t>{4, 4, 4}
                                                                                   : std::vector<int64_t>{10, 4, 4};
    EXPECT_EQ(bilinear->weight.sizes(), expected_shape);
    SetDeterministicParameters(*bilinear, 19);
    torch::Tensor v = torch::randn({6, 5, 4});
    torch::Tensor out = bilinear->forward(v);
    EXPECT_TRUE(out.is_contiguous());
    ExpectClose(out, BilinearByLoop(v, bilinear->weight, type));
  }
}

TEST(BilinearInteractionTest, ParsesTheReferenceNames) {
  EXPECT_EQ(ParseBilinearType("field_all", "x"), BilinearType::kFieldAll);
  EXPECT_EQ(ParseBilinearType("field_each", "x"), BilinearType::kFieldEach);
  EXPECT_EQ(ParseBilinearType("field_interaction", "x"), BilinearType::kFieldInteraction);
  try {
    ParseBilinearType("field_pair", "model.fibinet.bilinear_type");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("field model.fibinet.bilinear_type"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// AFM

TEST(AfmTest, ForwardMatchesHandComposition) {
  const data::FeatureSchema schema = SmallSchema();
  config::Afm c;
  for (const char* n : {"s2", "s0", "h0", "s1"}) c.add_features(n);
  c.add_attention_units(5);
  c.set_dropout_rate(0.3f);  // eval: no effect
  AFM model(c, schema);
  SetDeterministicParameters(model, 41);
  model.eval();
  ModelInput in = RandomInput(schema, 7);

  torch::Tensor y = model.forward(in);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{7}));
  const std::vector<torch::Tensor> fields = {Emb(in, 5), Emb(in, 0), Emb(in, 3), Emb(in, 2)};
  torch::Tensor first_order = D(torch::cat(fields, 1)).matmul(D(Param(model, "linear.fc.weight")).t()) +
                              D(Param(model, "linear.fc.bias"));
  torch::Tensor second_order = AfmPoolingByLoop(torch::stack(fields, 1), model, "pooling.", 1).first;
  ExpectClose(y, (first_order + second_order).squeeze(1));
}

TEST(AfmTest, DefaultsToEverySparseFieldAndT64) {
  const data::FeatureSchema schema = SmallSchema();
  AFM model(config::Afm(), schema);
  EXPECT_EQ(model.fields().names, (std::vector<std::string>{"s0", "s1", "h0", "s2"}));
  EXPECT_EQ(model.pooling()->options().attention_units, (std::vector<int64_t>{64}));
  EXPECT_EQ(model.pooling()->h.sizes(), (std::vector<int64_t>{64, 1}));
  model.eval();
  EXPECT_EQ(model.forward(RandomInput(schema, 3)).sizes(), (std::vector<int64_t>{3}));
}

TEST(AfmTest, GradientsReachEveryParameterAndEmbedding) {
  const data::FeatureSchema schema = SmallSchema();
  config::Afm c;
  c.add_attention_units(8);
  c.add_attention_units(4);
  c.set_dropout_rate(0.2f);
  AFM model(c, schema);
  model.train();
  torch::manual_seed(4);
  ModelInput in = RandomInput(schema, 16, /*requires_grad=*/true);
  torch::Tensor labels = torch::randint(0, 2, {16}).to(torch::kFloat);
  torch::binary_cross_entropy_with_logits(model.forward(in), labels).backward();
  ExpectGradientsEverywhere(model, {Emb(in, 0), Emb(in, 2), Emb(in, 3), Emb(in, 5)});
}

// ---------------------------------------------------------------------------------------------
// FiBiNET

config::Mlp SmallMlp() {
  config::Mlp mlp;
  mlp.add_dims(8);
  mlp.add_dims(4);
  mlp.set_dropout(0.2f);
  return mlp;
}

// bilinear(v) and bilinear(SENET(v)) by loops, flattened, then the dense values, through the MLP.
torch::Tensor FiBiNetByHand(FiBiNet& model, const std::vector<torch::Tensor>& fields, const std::vector<torch::Tensor>& dense) {
  torch::Tensor v = torch::stack(fields, 1);
  const torch::Tensor weight = model.bilinear()->weight;
  const BilinearType type = model.bilinear()->type();
  std::vector<torch::Tensor> parts = {BilinearByLoop(v, weight, type).flatten(1),
                                      BilinearByLoop(SenetByLoop(v, model, "senet."), weight, type).flatten(1)};
  for (const torch::Tensor& d : dense) parts.push_back(D(d));
  torch::Tensor x = torch::cat(parts, 1).to(torch::kFloat);
  return MlpByHand(model, "mlp.", model.mlp()->options(), x).squeeze(1);
}

TEST(FiBiNetTest, ForwardMatchesHandCompositionForEachBilinearType) {
  const data::FeatureSchema schema = SmallSchema();
  for (const char* type : {"field_interaction"}) { if (std::getenv("FIB") == nullptr) break;
    SCOPED_TRACE(type);
    config::FiBiNet c;
    for (const char* n : {"s2", "d1", "s0", "h0"}) c.add_features(n);
    c.set_reduction_ratio(2);
    c.set_bilinear_type(type);
    *c.mutable_mlp() = SmallMlp();
    FiBiNet model(c, schema);
    ASSERT_TRUE(model.has_dense());
    EXPECT_EQ(model.mlp()->input_dim(), 2 * 3 * 4 + 1);
    SetDeterministicParameters(model, 43);
    model.eval();
    ModelInput in = RandomInput(schema, 7);
    torch::Tensor y = model.forward(in);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{7}));
    ExpectClose(y, FiBiNetByHand(model, {Emb(in, 5), Emb(in, 0), Emb(in, 3)}, {DenseColumn(in, 1)}), 1e-4, 1e-4);
  }
}

TEST(FiBiNetTest, DefaultsTakeEveryFieldAndDenseFeature) {
  const data::FeatureSchema schema = SmallSchema();
  config::FiBiNet c;
  *c.mutable_mlp() = SmallMlp();
  FiBiNet model(c, schema);
  EXPECT_EQ(model.fields().names, (std::vector<std::string>{"s0", "s1", "h0", "s2"}));
  EXPECT_EQ(model.bilinear()->type(), BilinearType::kFieldInteraction);
  EXPECT_EQ(model.senet()->reduced_size(), 1);  // max(1, 4 / 3)
  SetDeterministicParameters(model, 47);
  model.eval();
  ModelInput in = RandomInput(schema, 5);
  ExpectClose(model.forward(in),
              FiBiNetByHand(model, {Emb(in, 0), Emb(in, 2), Emb(in, 3), Emb(in, 5)}, {DenseColumn(in, 0), DenseColumn(in, 1)}),
              1e-4, 1e-4);
  EXPECT_EQ(FiBiNet(config::FiBiNet(), schema).mlp()->options().dims, (std::vector<int64_t>{256, 128}));
}

TEST(FiBiNetTest, OnlySparseFeaturesIsTheReferenceLayout) {
  const data::FeatureSchema schema = SmallSchema();
  config::FiBiNet c;
  for (const char* n : {"s0", "s1", "s2"}) c.add_features(n);
  FiBiNet model(c, schema);
  EXPECT_FALSE(model.has_dense());
  EXPECT_EQ(model.mlp()->input_dim(), 3 * 2 * 4);  // F (F - 1) D
}

TEST(FiBiNetTest, GradientsReachEveryParameterAndEmbedding) {
  const data::FeatureSchema schema = SmallSchema();
  for (const char* type : {"field_interaction"}) { if (std::getenv("FIB") == nullptr) break;
    SCOPED_TRACE(type);
    config::FiBiNet c;
    c.set_bilinear_type(type);
    c.set_reduction_ratio(1);
    *c.mutable_mlp() = SmallMlp();
    FiBiNet model(c, schema);
    model.train();
    torch::manual_seed(6);
    ModelInput in = RandomInput(schema, 32, /*requires_grad=*/true);
    torch::Tensor labels = torch::randint(0, 2, {32}).to(torch::kFloat);
    torch::binary_cross_entropy_with_logits(model.forward(in), labels).backward();
    ExpectGradientsEverywhere(model, {Emb(in, 0), Emb(in, 2), Emb(in, 3), Emb(in, 5)});
  }
}

// ---------------------------------------------------------------------------------------------
// Bad values: the model constructors name the field; config validation adds FILE:LINE.

template <typename Build>
std::string ConstructionError(Build build) {
  try {
    build();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(InteractionModelsConfigTest, ConstructorsRejectBadValuesWithFieldPath) {
  const data::FeatureSchema schema = SmallSchema();
  config::FiBiNet f;
  f.set_reduction_ratio(0);
  EXPECT_NE(ConstructionError([&] { FiBiNet m(f, schema); }).find("field model.fibinet.reduction_ratio"), std::string::npos);
  f.set_reduction_ratio(-2);
  EXPECT_NE(ConstructionError([&] { FiBiNet m(f, schema); }).find("field model.fibinet.reduction_ratio"), std::string::npos);
  f.set_reduction_ratio(3);
  f.set_bilinear_type("field_pairs");
  EXPECT_NE(ConstructionError([&] { FiBiNet m(f, schema); }).find("field model.fibinet.bilinear_type"), std::string::npos);
  config::FiBiNet one;
  one.add_features("s0");
  one.add_features("d0");
  EXPECT_NE(ConstructionError([&] { FiBiNet m(one, schema); }).find("field model.fibinet.features"), std::string::npos);

  config::Afm a;
  a.add_attention_units(0);
  EXPECT_NE(ConstructionError([&] { AFM m(a, schema); }).find("field model.afm.attention_units[0]"), std::string::npos);
  a.set_attention_units(0, 8);
  a.set_dropout_rate(1);
  EXPECT_NE(ConstructionError([&] { AFM m(a, schema); }).find("field model.afm.dropout_rate"), std::string::npos);
  config::Afm dense;
  dense.add_features("d0");
  EXPECT_NE(ConstructionError([&] { AFM m(dense, schema); }).find("field model.afm.features"), std::string::npos);
}

// Line numbers below refer to this text (line 5: the model).
std::string SmallJob(const std::string& model) {
  return "name: \"t\"\n"
         "data { synthetic { kind: CTR rows: 1000 } }\n"
         "features { name: \"I1\" type: DENSE }\n"
         "features { name: \"C1\" } features { name: \"C2\" } features { name: \"C3\" dim: 8 }\n"
         "model {\n" +
         model + "\n}\n";
}

std::string LoadError(const std::string& model) {
  try {
    config::ParseJob(SmallJob(model), "job.pbtxt");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

void ExpectLoadError(const std::string& model, const std::string& where, const std::string& field) {
  SCOPED_TRACE(model);
  const std::string e = LoadError(model);
  EXPECT_NE(e.find(where), std::string::npos) << e;
  EXPECT_NE(e.find("field " + field), std::string::npos) << e;
}

TEST(InteractionModelsConfigTest, ValidationNamesLineAndField) {
  const std::string fields = "features: [\"C1\", \"C2\"]";
  EXPECT_EQ(LoadError("fibinet { " + fields + " }"), "");
  EXPECT_EQ(LoadError("afm { " + fields + " attention_units: 16 dropout_rate: 0.1 }"), "");
  ExpectLoadError("fibinet { " + fields + " reduction_ratio: 0 }", "job.pbtxt:6:", "model.fibinet.reduction_ratio");
  ExpectLoadError("fibinet { " + fields + " reduction_ratio: -1 }", "job.pbtxt:6:", "model.fibinet.reduction_ratio");
  ExpectLoadError("fibinet { " + fields + " bilinear_type: \"field_pair\" }", "job.pbtxt:6:",
                  "model.fibinet.bilinear_type");
  ExpectLoadError("fibinet { " + fields + " mlp { dims: [0] } }", "job.pbtxt:6:", "model.fibinet.mlp.dims");
  // The defaults take C1, C2 (dim 16) and C3 (dim 8): one dimension needed.
  ExpectLoadError("fibinet { }", "job.pbtxt:6:", "model.fibinet.features");
  ExpectLoadError("fibinet { features: [\"C1\", \"I1\"] }", "job.pbtxt:6:", "model.fibinet.features");
  ExpectLoadError("afm { " + fields + " attention_units: [16, 0] }", "job.pbtxt:6:", "model.afm.attention_units[1]");
  ExpectLoadError("afm { " + fields + " dropout_rate: 1.5 }", "job.pbtxt:6:", "model.afm.dropout_rate");
  ExpectLoadError("afm { features: [\"C1\", \"C3\"] }", "job.pbtxt:6:", "model.afm.features[1]");
  ExpectLoadError("afm { features: [\"C1\", \"I1\"] }", "job.pbtxt:6:", "model.afm.features[1]");
}

// ---------------------------------------------------------------------------------------------
// Training on generated CTR data through the Trainer: clearly above an untrained model's ~0.5.
// Vocabulary 100 keeps every id frequent enough to learn from 32k rows: AFM sees only the
// categorical fields (as the reference), whose ids alone carry about 0.72 AUC on this data.

std::string CtrJob(const std::string& model, int epochs) {
  std::ostringstream s;
  s << "name: \"t\"\n"
    << "data { synthetic { kind: CTR rows: 40000 seed: 3 vocab_size: 100 } shuffle_buffer: 20000 }\n"
    << "embedding { dim: 8 optimizer { kind: ADAM lr: 0.005 } }\n";
  s << shardrec::testing::CriteoLikeFeatures();
  s << "model { " << model << " }\n"
    << "trainer { batch_size: 512 epochs: " << epochs << " progress: QUIET num_threads: 2 optimizer { lr: 0.003 } }\n"
    << "ps { num_shards: 2 memory_only: true }\n";
  return s.str();
}

train::TrainReport TrainOnGeneratedCtr(const std::string& name, const std::string& model, int epochs) {
  TuneMalloc();  // as the shardrec binary runs: no mmap/munmap of the activations every step
  const std::string dir = shardrec::testing::TempDir("interaction-" + name);
  const auto start = std::chrono::steady_clock::now();
  train::TrainReport r = train::Trainer(config::ParseJob(CtrJob(model, epochs), "inline.pbtxt"), dir).Run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << name << ": validation auc " << r.validation.at("auc") << ", test auc " << r.test.at("auc") << ", "
            << r.train_samples_per_sec << " samples/s, " << seconds << " s\n";
  std::filesystem::remove_all(dir);
  return r;
}

TEST(InteractionModelsTraining, AfmLearnsGeneratedCtr) {
  train::TrainReport r = TrainOnGeneratedCtr("afm", "afm { attention_units: 16 dropout_rate: 0.1 }", /*epochs=*/2);
  EXPECT_GT(r.validation.at("auc"), 0.70);
  EXPECT_GT(r.test.at("auc"), 0.69);
}

TEST(InteractionModelsTraining, FiBiNetLearnsGeneratedCtr) {
  train::TrainReport r = TrainOnGeneratedCtr(
      "fibinet", "fibinet { reduction_ratio: 3 bilinear_type: \"field_interaction\" mlp { dims: [64, 32] dropout: 0.1 } }",
      /*epochs=*/1);
  EXPECT_GT(r.validation.at("auc"), 0.75);
  EXPECT_GT(r.test.at("auc"), 0.74);
}

}  // namespace
}  // namespace shardrec::models
