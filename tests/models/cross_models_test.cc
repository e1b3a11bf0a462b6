// The cross-network family: VectorCrossNet, MatrixCrossNet, LowRankMixtureCrossNet, DCN, DCN-V2
// and EDCN against hand compositions of LibTorch ops built from their own parameter tensors;
// gradient flow; every option; config errors; short trainings through the real Trainer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/error.h"
#include "config/config_loader.h"
#include "models/cross_layers.h"
#include "models/dcn.h"
#include "models/dcnv2.h"
#include "models/edcn.h"
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

// SmallSchema order: s0, d0, s1, h0 (mean), c0 (concat), s2, d1. The flat parts' default input is
// [s0, s1, h0, s2, d0, d1] (D = 18); c0 cannot enter them.
torch::Tensor DefaultFlatInput(const ModelInput& in) {
  return torch::cat({in.features[0].emb, in.features[2].emb, in.features[3].emb, in.features[5].emb, in.dense}, 1);
}
std::vector<torch::Tensor> EmbeddingsOf(const ModelInput& in) {
  return {in.features[0].emb, in.features[2].emb, in.features[3].emb, in.features[5].emb};
}


void ExpectClose(const torch::Tensor& got, const torch::Tensor& want) {
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(torch::allclose(got.detach(), want.detach(), 1e-4, 1e-4))
      << "max abs diff " << (got - want).abs().max().item<double>();
}

torch::Tensor LinearByHand(torch::nn::Module& m, const std::string& prefix, const torch::Tensor& x) {
  return x.matmul(Param(m, prefix + "weight").t()) + Param(m, prefix + "bias");
}

// ---------------------------------------------------------------------------------------------
// Cross networks written out from their formulas (`prefix` names the network inside `m`)

// x_{l+1} = x0 * sum_d(x_l w_l) + b_l + x_l.
torch::Tensor VectorCrossByHand(torch::nn::Module& m, const std::string& prefix, int layers, const torch::Tensor& x0) {
  torch::Tensor x = x0;
  for (int l = 0; l < layers; ++l) {
    const std::string n = std::to_string(l);
    x = x0 * (x * Param(m, prefix + "w" + n)).sum(1, true) + Param(m, prefix + "b" + n) + x;
  }
  return x;
}

// x_{l+1} = x0 (.) (W_l x_l + b_l) + x_l, one row at a time as matrix-vector products.
torch::Tensor MatrixCrossByHand(torch::nn::Module& m, const std::string& prefix, int layers, const torch::Tensor& x0) {
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < x0.size(0); ++i) {
    torch::Tensor r0 = x0[i], r = r0;
    for (int l = 0; l < layers; ++l) {
      const std::string n = std::to_string(l);
      r = r0 * (torch::mv(Param(m, prefix + "w" + n), r) + Param(m, prefix + "b" + n)) + r;
    }
    rows.push_back(r);
  }
  return torch::stack(rows);
}

// The reference CrossNetMix loop: per expert, gate score G_e x_l and x0 (.) (U_e tanh(C_e
// tanh(V_e^T x_l)) + b_l) on column vectors; softmax over the expert scores; weighted sum; + x_l.
torch::Tensor MixtureCrossByHand(torch::nn::Module& m, const std::string& prefix, int layers, int experts,
                                 const torch::Tensor& x0) {
  torch::Tensor c0 = x0.unsqueeze(2);  // [B, D, 1]
  torch::Tensor xl = c0;
  torch::Tensor gate = Param(m, prefix + "gate");
  for (int l = 0; l < layers; ++l) {
    const std::string n = std::to_string(l);
    torch::Tensor u = Param(m, prefix + "u" + n), v = Param(m, prefix + "v" + n), c = Param(m, prefix + "c" + n);
    torch::Tensor b = Param(m, prefix + "b" + n).unsqueeze(1);  // [D, 1]
    std::vector<torch::Tensor> outputs, scores;
    for (int e = 0; e < experts; ++e) {
      scores.push_back(xl.squeeze(2).matmul(gate[e].unsqueeze(1)));  // [B, 1]
      torch::Tensor h = torch::tanh(v[e].t().matmul(xl));             // [B, r, 1]
      h = torch::tanh(c[e].matmul(h));
      outputs.push_back((c0 * (u[e].matmul(h) + b)).squeeze(2));  // [B, D]
    }
    torch::Tensor p = torch::softmax(torch::stack(scores, 1), 1);  // [B, E, 1]
    xl = torch::stack(outputs, 2).matmul(p) + xl;                   // [B, D, 1]
  }
  return xl.squeeze(2);
}

TEST(CrossLayersTest, VectorCrossNetMatchesFormula) {
  VectorCrossNet net(6, 3);
  SetDeterministicParameters(net, 3);
  torch::Tensor x = torch::randn({5, 6});
  ExpectClose(net.forward(x), VectorCrossByHand(net, "", 3, x));
  // One layer at a time (EDCN's use) is the same map.
  torch::Tensor one = net.Layer(0, x, x * 0.5);
  ExpectClose(one, x * (x * 0.5 * Param(net, "w0")).sum(1, true) + Param(net, "b0") + x * 0.5);
}

TEST(CrossLayersTest, MatrixCrossNetMatchesFormula) {
  MatrixCrossNet net(6, 3);
  SetDeterministicParameters(net, 4, 0.3);
  torch::Tensor x = torch::randn({5, 6});
  ExpectClose(net.forward(x), MatrixCrossByHand(net, "", 3, x));
}

TEST(CrossLayersTest, LowRankMixtureMatchesReferenceLoop) {
  for (int experts : {1, 3}) {
    LowRankMixtureCrossNet net(7, 2, /*low_rank=*/3, experts);
    SetDeterministicParameters(net, 5);
    torch::Tensor x = torch::randn({4, 7});
    ExpectClose(net.forward(x), MixtureCrossByHand(net, "", 2, experts, x));
  }
}

TEST(CrossLayersTest, InitialisationFollowsReference) {
  torch::manual_seed(0);
  const int64_t d = 64, r = 16, e = 4;
  LowRankMixtureCrossNet mix(d, 2, r, e);
  // Xavier normal on [E, D, r]: std = sqrt(2 / (D*r + E*r)); biases zero; gate U(+-1/sqrt(D)).
  EXPECT_NEAR(Param(mix, "u0").std().item<double>(), std::sqrt(2.0 / (d * r + e * r)), 0.01);
  EXPECT_NEAR(Param(mix, "c1").std().item<double>(), std::sqrt(2.0 / (r * r + e * r)), 0.02);
  EXPECT_EQ(Param(mix, "b1").abs().sum().item<double>(), 0);
  EXPECT_LE(Param(mix, "gate").abs().max().item<double>(), 1 / std::sqrt(double(d)));
  VectorCrossNet vec(d, 2);
  EXPECT_LE(Param(vec, "w1").abs().max().item<double>(), 1 / std::sqrt(double(d)));
  EXPECT_EQ(Param(vec, "b0").abs().sum().item<double>(), 0);
}

TEST(CrossLayersTest, GradientsReachEveryParameterAndTheInput) {
  std::vector<std::shared_ptr<CrossNet>> nets = {std::make_shared<VectorCrossNet>(6, 2),
                                                 std::make_shared<MatrixCrossNet>(6, 2),
                                                 std::make_shared<LowRankMixtureCrossNet>(6, 2, 3, 4)};
  for (auto& net : nets) {
    torch::Tensor x = torch::randn({8, 6}).requires_grad_(true);
    net->forward(x).square().sum().backward();
    ExpectGradientsEverywhere(*net, {x});
  }
}

TEST(CrossLayersTest, RejectsEmptyShapes) {
  EXPECT_THROW(VectorCrossNet(4, 0), ConfigError);
  EXPECT_THROW(MatrixCrossNet(0, 2), ConfigError);
  EXPECT_THROW(LowRankMixtureCrossNet(4, 2, 0, 4), ConfigError);
  EXPECT_THROW(LowRankMixtureCrossNet(4, 2, 8, 0), ConfigError);
}

config::Mlp SmallMlp() {
  config::Mlp mlp;
  mlp.add_dims(8);
  mlp.add_dims(4);
  mlp.set_dropout(0.2f);
  return mlp;
}

// ---------------------------------------------------------------------------------------------
// DCN

TEST(DcnTest, ForwardMatchesHandComposition) {
  const data::FeatureSchema schema = SmallSchema();
  config::Dcn c;
  c.set_cross_num(3);
  *c.mutable_mlp() = SmallMlp();
  Dcn model(c, schema);
  SetDeterministicParameters(model, 11, 0.3);
  model.eval();
  ModelInput in = RandomInput(schema, 6);
  torch::Tensor x = DefaultFlatInput(in);
  ASSERT_EQ(model.features().flat_dim, 18);

  torch::Tensor y = model.forward(in);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{6}));
  torch::Tensor top = torch::cat({VectorCrossByHand(model, "cross.", 3, x), MlpByHand(model, "mlp.", model.mlp()->options(), x)}, 1);
  ExpectClose(y, LinearByHand(model, "linear.fc.", top).squeeze(1));
}

TEST(DcnTest, ListedFeaturesAndDefaults) {
  const data::FeatureSchema schema = SmallSchema();
  config::Dcn c;
  for (const char* n : {"d1", "s2", "s0"}) c.add_features(n);
  c.set_cross_num(1);
  Dcn model(c, schema);
  EXPECT_EQ(model.mlp()->options().dims, (std::vector<int64_t>{256, 128}));
  EXPECT_EQ(model.cross().num_layers(), 1);
  EXPECT_EQ(Dcn(config::Dcn(), schema).cross().num_layers(), 3);
  SetDeterministicParameters(model, 12, 0.3);
  model.eval();
  ModelInput in = RandomInput(schema, 4);
  // Embeddings in list order, then the dense values.
  torch::Tensor x = torch::cat({in.features[5].emb, in.features[0].emb, in.dense.narrow(1, 1, 1)}, 1);
  torch::Tensor top = torch::cat({VectorCrossByHand(model, "cross.", 1, x), MlpByHand(model, "mlp.", model.mlp()->options(), x)}, 1);
  ExpectClose(model.forward(in), LinearByHand(model, "linear.fc.", top).squeeze(1));
}

TEST(DcnTest, GradientsReachEveryParameterAndEmbedding) {
  const data::FeatureSchema schema = SmallSchema();
  config::Dcn c;
  *c.mutable_mlp() = SmallMlp();
  Dcn model(c, schema);
  model.train();
  torch::manual_seed(4);
  ModelInput in = RandomInput(schema, 16, /*requires_grad=*/true);
  torch::Tensor labels = torch::randint(0, 2, {16}).to(torch::kFloat);
  model.Loss(model.forward(in), labels.unsqueeze(1)).backward();
  ExpectGradientsEverywhere(model, EmbeddingsOf(in));
}

// ---------------------------------------------------------------------------------------------
// DCN-V2

config::DcnV2 DcnV2Config(config::DcnV2::CrossParameterization param, bool mixture, config::DcnV2::Structure s) {
  config::DcnV2 c;
  c.set_cross_num(2);
  c.set_cross_parameterization(param);
  c.set_use_low_rank_mixture(mixture);
  c.set_low_rank(3);
  c.set_num_experts(2);
  c.set_structure(s);
  *c.mutable_mlp() = SmallMlp();
  return c;
}

const config::DcnV2::Structure kStructures[] = {config::DcnV2::PARALLEL, config::DcnV2::STACKED,
                                                config::DcnV2::CROSSNET_ONLY};

// Every (parameterization, mixture, structure) combination against its hand composition.
TEST(DcnV2Test, EveryVariantMatchesHandComposition) {
  const data::FeatureSchema schema = SmallSchema();
  for (auto param : {config::DcnV2::MATRIX, config::DcnV2::VECTOR}) {
    for (bool mixture : {true, false}) {
      for (auto structure : kStructures) {
        SCOPED_TRACE(config::DcnV2::CrossParameterization_Name(param) + " mixture=" + std::to_string(mixture) + " " +
                     config::DcnV2::Structure_Name(structure));
        DcnV2 model(DcnV2Config(param, mixture, structure), schema);
        SetDeterministicParameters(model, 21, 0.3);
        model.eval();
        ModelInput in = RandomInput(schema, 5);
        torch::Tensor x = DefaultFlatInput(in);
        torch::Tensor cross;
        if (param == config::DcnV2::VECTOR) {
          cross = VectorCrossByHand(model, "cross.", 2, x);
        } else if (mixture) {
          cross = MixtureCrossByHand(model, "cross.", 2, 2, x);
        } else {
          cross = MatrixCrossByHand(model, "cross.", 2, x);
        }
        torch::Tensor top = cross;
        if (structure == config::DcnV2::PARALLEL) {
          top = torch::cat({cross, MlpByHand(model, "mlp.", model.mlp()->options(), x)}, 1);
        } else if (structure == config::DcnV2::STACKED) {
          top = MlpByHand(model, "mlp.", model.mlp()->options(), cross);
        } else {
          EXPECT_FALSE(model.mlp());
        }
        ExpectClose(model.forward(in), LinearByHand(model, "linear.fc.", top).squeeze(1));
      }
    }
  }
}

TEST(DcnV2Test, DefaultsAreTheReferences) {
  const data::FeatureSchema schema = SmallSchema();
  DcnV2 model(config::DcnV2(), schema);
  auto* mix = dynamic_cast<LowRankMixtureCrossNet*>(&model.cross());
  ASSERT_NE(mix, nullptr);
  EXPECT_EQ(mix->low_rank(), 32);
  EXPECT_EQ(mix->num_experts(), 4);
  EXPECT_EQ(mix->num_layers(), 3);
  EXPECT_EQ(model.structure(), DcnV2::Structure::kParallel);
  EXPECT_EQ(model.mlp()->options().dims, (std::vector<int64_t>{256, 128}));
  EXPECT_EQ(model.linear()->fc->weight.size(1), 18 + 128);
}

TEST(DcnV2Test, GradientsReachEveryParameterAndEmbedding) {
  const data::FeatureSchema schema = SmallSchema();
  for (auto param : {config::DcnV2::MATRIX, config::DcnV2::VECTOR}) {
    for (bool mixture : {true, false}) {
      for (auto structure : kStructures) {
        DcnV2 model(DcnV2Config(param, mixture, structure), schema);
        model.train();
        torch::manual_seed(6);
        ModelInput in = RandomInput(schema, 16, /*requires_grad=*/true);
        torch::Tensor labels = torch::randint(0, 2, {16, 1}).to(torch::kFloat);
        model.Loss(model.forward(in), labels).backward();
        ExpectGradientsEverywhere(model, EmbeddingsOf(in));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// EDCN

// The regulation gate [D] over fields of `widths`, from its definition, entry by entry: the
// softmax over the fields that have bit k, times their number. `weights` [F, W] (bit-wise) or
// [F, 1] (field-wise).
torch::Tensor GateByHand(const torch::Tensor& weights, const std::vector<int64_t>& widths, bool bitwise, double tau) {
  std::vector<float> gate;
  auto w = [&](size_t f, int64_t k) { return std::exp(weights.index({static_cast<int64_t>(f), bitwise ? k : 0}).item<double>() / tau); };
  for (size_t f = 0; f < widths.size(); ++f) {
    for (int64_t k = 0; k < widths[f]; ++k) {
      double sum = 0;
      int fields = 0;
      for (size_t g = 0; g < widths.size(); ++g) {
        if (!bitwise || k < widths[g]) {
          sum += w(g, k);
          ++fields;
        }
      }
      gate.push_back(static_cast<float>(fields * w(f, k) / sum));
    }
  }
  return torch::tensor(gate);
}

// The EDCN forward from the header's formulas; `widths` are the fields of x.
torch::Tensor EdcnByHand(Edcn& model, const config::Edcn& c, const std::vector<int64_t>& widths, const torch::Tensor& x) {
  const int layers = c.cross_num();
  const bool bitwise = c.gate_type() == config::Edcn::BGU;
  auto regulate = [&](int l, const torch::Tensor& z) -> std::pair<torch::Tensor, torch::Tensor> {
    if (!c.use_regulation_module()) return {z, z};
    const std::string r = "regulation" + std::to_string(l) + ".";
    torch::Tensor gate_w = Param(model, r + "cross_gate");
    torch::Tensor deep_w = Param(model, r + "deep_gate");
    if (!bitwise) {
      gate_w = gate_w.unsqueeze(1);
      deep_w = deep_w.unsqueeze(1);
    }
    return {z * GateByHand(gate_w, widths, bitwise, c.temperature()), z * GateByHand(deep_w, widths, bitwise, c.temperature())};
  };
  auto attention = [&](const std::string& p, const torch::Tensor& z) {
    torch::Tensor h = torch::relu(LinearByHand(model, p + "_hidden.", z));
    return torch::softmax(h.matmul(Param(model, p + "_score.weight").t()), 1);
  };
  auto [cross, deep] = regulate(0, x);
  torch::Tensor cross0 = cross, bridge;
  for (int l = 0; l < layers; ++l) {
    const std::string n = std::to_string(l);
    if (l > 0) std::tie(cross, deep) = regulate(l, bridge);
    cross = cross0 * (cross * Param(model, "cross.w" + n)).sum(1, true) + Param(model, "cross.b" + n) + cross;
    deep = MlpByHand(model, "deep" + n + ".", model.deep(l)->options(), deep);
    switch (c.bridge_type()) {
      case config::Edcn::HADAMARD_PRODUCT:
        bridge = cross * deep;
        break;
      case config::Edcn::ADD:
        bridge = cross + deep;
        break;
      case config::Edcn::CONCAT:
        bridge = torch::relu(LinearByHand(model, "bridge" + n + ".concat.", torch::cat({cross, deep}, 1)));
        break;
      case config::Edcn::ATTENTION_POOLING:
        bridge = attention("bridge" + n + ".cross", cross) * cross + attention("bridge" + n + ".deep", deep) * deep;
        break;
    }
  }
  return LinearByHand(model, "linear.fc.", torch::cat({cross, deep, bridge}, 1)).squeeze(1);
}

const config::Edcn::BridgeType kBridges[] = {config::Edcn::HADAMARD_PRODUCT, config::Edcn::ADD, config::Edcn::CONCAT,
                                             config::Edcn::ATTENTION_POOLING};

TEST(EdcnTest, EveryVariantMatchesHandComposition) {
  const data::FeatureSchema schema = SmallSchema();
  const std::vector<int64_t> widths = {4, 4, 4, 4, 1, 1};  // s0, s1, h0, s2, then d0, d1
  for (auto bridge : kBridges) {
    for (auto gate : {config::Edcn::FGU, config::Edcn::BGU}) {
      for (bool regulation : {true, false}) {
        SCOPED_TRACE(config::Edcn::BridgeType_Name(bridge) + " " + config::Edcn::GateType_Name(gate) +
                     " regulation=" + std::to_string(regulation));
        config::Edcn c;
        c.set_cross_num(3);
        c.set_bridge_type(bridge);
        c.set_gate_type(gate);
        c.set_use_regulation_module(regulation);
        c.set_temperature(0.7f);
        c.mutable_mlp()->set_dropout(0.1f);
        c.mutable_mlp()->set_activation(config::LEAKYRELU);
        Edcn model(c, schema);
        EXPECT_EQ(model.field_widths(), widths);
        EXPECT_EQ(model.uses_regulation(), regulation);
        SetDeterministicParameters(model, 31, 0.3);
        model.eval();
        ModelInput in = RandomInput(schema, 5);
        ExpectClose(model.forward(in), EdcnByHand(model, c, widths, DefaultFlatInput(in)));
      }
    }
  }
}

// Freshly built gates are the identity (weights 1: uniform softmax times the number of fields);
// learned weights redistribute the input among the fields, keeping the mean gate per bit at 1.
TEST(EdcnTest, GatesStartAsTheIdentityAndKeepMeanOne) {
  const data::FeatureSchema schema = SmallSchema();  // fields of widths 4, 4, 4, 4, 1, 1
  for (auto gate : {config::Edcn::FGU, config::Edcn::BGU}) {
    config::Edcn c;
    c.set_gate_type(gate);
    Edcn model(c, schema);
    ExpectClose(model.regulation(0)->CrossGate(), torch::ones({18}));
    ExpectClose(model.regulation(2)->DeepGate(), torch::ones({18}));
    SetDeterministicParameters(model, 41);
    torch::Tensor g = model.regulation(1)->CrossGate();
    EXPECT_GT((g - 1).abs().max().item<double>(), 0.05);
    // Bit 0 is shared by all six fields; bits 1..3 only by the four embeddings (FGU: each field's
    // gate is the same on all its bits, so only the per-field means are checked there).
    torch::Tensor per_field = torch::cat({g.narrow(0, 0, 16).view({4, 4}).select(1, 0), g.narrow(0, 16, 2)});
    EXPECT_NEAR(per_field.mean().item<double>(), 1.0, 1e-5);
    if (gate == config::Edcn::BGU) {
      EXPECT_NEAR(g.narrow(0, 0, 16).view({4, 4}).select(1, 2).mean().item<double>(), 1.0, 1e-5);
    }
  }
}

TEST(EdcnTest, GradientsReachEveryParameterAndEmbedding) {
  const data::FeatureSchema schema = SmallSchema();
  for (auto bridge : kBridges) {
    for (auto gate : {config::Edcn::FGU, config::Edcn::BGU}) {
      config::Edcn c;
      c.set_cross_num(2);
      c.set_bridge_type(bridge);
      c.set_gate_type(gate);
      c.mutable_mlp()->set_dropout(0.1f);
      Edcn model(c, schema);
      model.train();
      torch::manual_seed(9);
      ModelInput in = RandomInput(schema, 16, /*requires_grad=*/true);
      torch::Tensor labels = torch::randint(0, 2, {16, 1}).to(torch::kFloat);
      model.Loss(model.forward(in), labels).backward();
      SCOPED_TRACE(config::Edcn::BridgeType_Name(bridge));
      ExpectGradientsEverywhere(model, EmbeddingsOf(in));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Bad values: the constructors throw ConfigError naming the field; config validation reports the
// same with FILE:LINE.

TEST(CrossModelsConfigTest, ConstructorsRejectBadValues) {
  const data::FeatureSchema schema = SmallSchema();
  auto error_of = [](auto make) {
    try {
      make();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  config::Dcn dcn;
  dcn.set_cross_num(0);
  EXPECT_NE(error_of([&] { Dcn(dcn, schema); }).find("field model.dcn.cross_num"), std::string::npos);
  dcn = config::Dcn();
  dcn.add_features("c0");  // a concat sequence
  EXPECT_NE(error_of([&] { Dcn(dcn, schema); }).find("field model.dcn.features"), std::string::npos);

  config::DcnV2 v2;
  v2.set_low_rank(0);
  EXPECT_NE(error_of([&] { DcnV2(v2, schema); }).find("field model.dcnv2.low_rank"), std::string::npos);
  v2 = config::DcnV2();
  v2.set_num_experts(-1);
  EXPECT_NE(error_of([&] { DcnV2(v2, schema); }).find("field model.dcnv2.num_experts"), std::string::npos);

  config::Edcn e;
  e.set_temperature(0);
  EXPECT_NE(error_of([&] { Edcn(e, schema); }).find("field model.edcn.temperature"), std::string::npos);
  e = config::Edcn();
  e.mutable_mlp()->add_dims(8);
  EXPECT_NE(error_of([&] { Edcn(e, schema); }).find("field model.edcn.mlp.dims"), std::string::npos);
  e = config::Edcn();
  e.mutable_mlp()->add_dropout_rates(0.1f);
  EXPECT_NE(error_of([&] { Edcn(e, schema); }).find("dropout_rates"), std::string::npos);
}

// A Criteo-like job (13 dense, 26 sparse features); the model block is on line 43.
std::string CtrJob(const std::string& model, int rows) {
  std::ostringstream s;
  s << "name: \"t\"\n"
    << "data { synthetic { kind: CTR rows: " << rows << " seed: 3 vocab_size: 1000 } shuffle_buffer: 20000 }\n"
    << "embedding { dim: 8 optimizer { kind: ADAM lr: 0.005 } }\n";
  s << shardrec::testing::CriteoLikeFeatures();
  s << "model { " << model << " }\n"
    << "trainer { batch_size: 512 epochs: 1 progress: QUIET num_threads: 2 optimizer { lr: 0.003 } }\n"
    << "ps { num_shards: 2 }\n";
  return s.str();
}

std::string ValidationError(const std::string& model) {
  try {
    config::ParseJob(CtrJob(model, 1000), "job.pbtxt");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(CrossModelsConfigTest, ValidationNamesLineAndField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"dcn { cross_num: 0 }", "field model.dcn.cross_num: must be >= 1"},
      {"dcn { features: \"C1\" features: \"C99\" }", "field model.dcn.features[1]"},
      {"dcn { mlp { dims: [8, 0] } }", "field model.dcn.mlp.dims[1]"},
      {"dcnv2 { cross_num: -1 }", "field model.dcnv2.cross_num: must be >= 1"},
      {"dcnv2 { low_rank: 0 }", "field model.dcnv2.low_rank: must be >= 1"},
      {"dcnv2 { num_experts: 0 }", "field model.dcnv2.num_experts: must be >= 1"},
      {"dcnv2 { mlp { dropout: 1.5 } }", "field model.dcnv2.mlp.dropout"},
      {"edcn { cross_num: 0 }", "field model.edcn.cross_num: must be >= 1"},
      {"edcn { temperature: 0 }", "field model.edcn.temperature: must be > 0"},
      {"edcn { mlp { dims: [64] } }", "field model.edcn.mlp.dims"},
      {"edcn { mlp { dropout_rates: [0.1] } }", "field model.edcn.mlp.dropout_rates"},
      {"edcn { mlp { dropout_rates: [0.1, 1.2] } }", "field model.edcn.mlp.dropout_rates[1]"},
  };
  for (const auto& [model, want] : cases) {
    const std::string e = ValidationError(model);
    EXPECT_NE(e.find("job.pbtxt:43:"), std::string::npos) << model << " -> " << e;
    EXPECT_NE(e.find(want), std::string::npos) << model << " -> " << e;
  }
  // Unknown enum values are parse errors on the line.
  for (const std::string model : {"dcnv2 { structure: DIAGONAL }", "edcn { bridge_type: PRODUCT }", "edcn { gate_type: XGU }"}) {
    EXPECT_NE(ValidationError(model).find("job.pbtxt:43:"), std::string::npos) << model;
  }
  // Good configs pass, including the reference's enum names.
  for (const std::string model : {"dcn { }", "dcnv2 { structure: STACKED cross_parameterization: VECTOR }",
                                  "edcn { bridge_type: CONCATENATION gate_type: BGU mlp { dropout_rates: [0.1, 0.2] } }",
                                  "edcn { bridge_type: POINTWISE_ADDITION }"}) {
    EXPECT_EQ(ValidationError(model), "") << model;
  }
}

// ---------------------------------------------------------------------------------------------
// Short trainings on generated CTR data through the real Trainer. An untrained model scores AUC
// ~0.5 on this data.

double TrainedValidationAuc(const std::string& model, const std::string& name) {
  const std::string dir = shardrec::testing::TempDir("cross-" + name);
  config::Job job = config::ParseJob(CtrJob(model, 40000), "inline.pbtxt");
  train::TrainReport r = train::Trainer(job, dir).Run();
  std::filesystem::remove_all(dir);
  return r.validation.at("auc");
}

TEST(CrossModelsTrainingTest, DcnLearnsGeneratedCtr) {
  EXPECT_GT(TrainedValidationAuc("dcn { cross_num: 3 mlp { dims: [64, 32] } }", "dcn"), 0.70);
}

TEST(CrossModelsTrainingTest, DcnV2LearnsGeneratedCtr) {
  EXPECT_GT(TrainedValidationAuc("dcnv2 { cross_num: 3 mlp { dims: [64, 32] dropout: 0.1 } }", "dcnv2"), 0.70);
}

TEST(CrossModelsTrainingTest, EdcnLearnsGeneratedCtr) {
  EXPECT_GT(TrainedValidationAuc("edcn { cross_num: 2 mlp { dropout: 0.1 } }", "edcn"), 0.70);
}

}  // namespace
}  // namespace shardrec::models
